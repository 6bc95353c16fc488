"""A multi-turn rollout from TRL's tool loop: its transcript text and what really happened in it.

TRL hands the reward function each completion as a list of messages: assistant turns (their ``tool_calls``
parsed out of the text) and the tool messages the loop appended. :func:`read_rollout` turns that into

* the transcript the verifiers read: each assistant turn's text with its calls written back as
  ``<tool_call>{"name", "arguments"}</tool_call>`` and each tool result as ``<tool_response>...</tool_response>``
  (Qwen2.5's format, what the model saw), images as ``<image>``;
* the rollout slot of the verifier context (``Context.rollout``): ``tool_outcomes`` (one bool per call, from the
  loop's real results, :func:`orsta_trl.tools.result.call_succeeded`; a call that never ran is a failure),
  ``tool_names``, ``turns`` (assistant turns) and ``hit_limit`` (the last turn still asked for a tool: the loop
  stopped at ``max_tool_calling_iterations`` or at the completion budget).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from orsta_trl.tools.result import call_succeeded


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(
            "<image>" if isinstance(p, dict) and p.get("type") == "image" else str(p.get("text") or "")
            for p in content
            if isinstance(p, dict)
        )
    return "" if content is None else str(content)


def _call(tool_call) -> tuple[str, str]:
    function = tool_call.get("function", tool_call) if isinstance(tool_call, Mapping) else {}
    name = str(function.get("name", "unknown"))
    return name, json.dumps({"name": name, "arguments": function.get("arguments", {})}, default=str)


def read_rollout(completion) -> tuple[str, dict]:
    """The transcript and the rollout record of one TRL completion (a list of messages).

    Args:
        completion: TRL's conversational completion: ``[{"role": "assistant", "content", "tool_calls"?},
            {"role": "tool", "name", "content"}, ...]`` (a plain string is one turn without calls).

    Returns:
        (transcript text, ``{"tool_outcomes", "tool_names", "turns", "hit_limit"}``).

    >>> text, r = read_rollout([
    ...     {"role": "assistant", "content": "<think>t</think>",
    ...      "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
    ...     {"role": "tool", "name": "f", "content": "2"},
    ...     {"role": "assistant", "content": "<answer>2</answer>"}])
    >>> r
    {'tool_outcomes': [True], 'tool_names': ['f'], 'turns': 2, 'hit_limit': False}
    """
    if isinstance(completion, str):  # a plain-text completion: one turn, no call
        return completion, {"tool_outcomes": [], "tool_names": [], "turns": 1, "hit_limit": False}
    pieces: list[str] = []
    outcomes: list[bool] = []
    names: list[str] = []
    pending = 0  # calls of the last assistant turn not yet answered by a tool message
    turns = 0
    for message in completion or []:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "tool":
            pieces.append(f"\n<tool_response>\n{_text(message.get('content'))}\n</tool_response>\n")
            if pending:
                outcomes[len(outcomes) - pending] = call_succeeded(message.get("content"))
                pending -= 1
            continue
        turns += 1
        pending = 0  # calls left unanswered by the previous turn stay failures
        pieces.append(_text(message.get("content")))
        for tool_call in message.get("tool_calls") or []:
            name, body = _call(tool_call)
            pieces.append(f"\n<tool_call>\n{body}\n</tool_call>")
            names.append(name)
            outcomes.append(False)
            pending += 1
    rollout = {"tool_outcomes": outcomes, "tool_names": names, "turns": turns, "hit_limit": pending > 0}
    return "".join(pieces), rollout
