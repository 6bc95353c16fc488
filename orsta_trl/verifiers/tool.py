"""``tool``: ARTIST-style agentic rollouts (reasoning interleaved with tool calls, then a final answer).

The completion is the whole rollout: ``<think>...</think>``, tool calls as ``<tool_call>{json}</tool_call>``
blocks (Qwen style), tool outputs as ``<tool_response>...</tool_response>`` blocks (tag names are the params
``call_tag`` and ``output_tag``), and a final ``<answer>...</answer>``.

* ``accuracy``: the final answer block, wrapped as ``<answer>...</answer>``, scored against the ground truth by
  the verifier named in ``params.answer_verifier`` (default ``math``) with params ``params.answer_params``;
  its reason passes through. No answer block: 0, reason ``no_answer``.
* ``format``: the share of three holds: (1) a think block comes before the first tool call (or there is a
  think block and no call); (2) every call is followed by its output before the next call; (3) exactly one
  answer block, at the very end (only whitespace after ``</answer>``).
* ``tool_success`` part: successful calls / calls (ARTIST). With no call the ratio is 0/0, undefined in ARTIST;
  it scores 0 by default (``params.require_tool: true``), 1 with ``require_tool: false``. Why 0: this part exists
  to teach calling. Scoring 0/0 as 1 gives every completion that never calls the full tool reward for free, so a
  group that answers without calling has no spread on it, a group mixing good calls and no calls has none
  either, and a failed call (0) scores below not trying (1): the policy is pushed away from calling. With 0, a
  successful call always beats no call. Set ``require_tool: false`` where calling is optional and should not
  be pushed (a record the model can answer without tools).

Call outcomes come from :func:`transcript_outcomes` (an output that :func:`reports_failure` is a failure, as is
a call with no output). Multi-turn training that knows the real outcomes puts them in the context's
rollout slot (``ctx.rollout["tool_outcomes"]``, one bool per call), which wins over the transcript.

The answer verifier is resolved once, when the record is prepared, from the registry handed to the constructor;
this module imports nothing of the registry.

Deviations from ARTIST: its format reward is a graded tag checklist over the same structure; here it is the
share of the three holds above. ``isolated`` is True because the answer verifier (math-verify) may hang.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.answer import extract, tag_blocks
from orsta_trl.verifiers.base import NOT_RUN, Context, FieldError, Verdict, Verifier

PARTS = ("tool_success",)
_TAG_RE = re.compile(r"[A-Za-z_][\w.-]*")


def _events(text: str, params: ToolParams) -> list[tuple[int, str, str]]:
    """(position, "call" or "output", content) of every complete call and output block, in order."""
    calls = [(start, "call", content) for start, _, content in tag_blocks(text, params.call_tag)]
    outputs = [(start, "output", content) for start, _, content in tag_blocks(text, params.output_tag)]
    return sorted(calls + outputs)


def _call_outputs(events: list[tuple[int, str, str]]) -> list[str | None]:
    """For each call, the output that follows it before the next call (None when there is none)."""
    found: list[str | None] = []
    for i, (_, kind, _) in enumerate(events):
        if kind == "call":
            following = events[i + 1] if i + 1 < len(events) else None
            found.append(following[2] if following and following[1] == "output" else None)
    return found


def reports_failure(text: str) -> bool:
    """The one rule for a tool result's text: one that starts with ``Error`` (after whitespace) reports a failed
    call. Tools write their failures so (``Error: ...``), the tool loop reads them so, and so does this verifier.

    >>> reports_failure("  Error: division by zero"), reports_failure("42 (no Error here)")
    (True, False)
    """
    return str(text).lstrip().startswith("Error")


def transcript_outcomes(text: str, params: ToolParams) -> list[bool]:
    """Per tool call, whether it succeeded, read from the outputs in the transcript."""
    return [out is not None and not reports_failure(out) for out in _call_outputs(_events(text, params))]


def rollout_scores(text: str, params: ToolParams, outcomes: Sequence[bool] | None = None) -> dict:
    """``format``, ``tool_success`` and the final ``answer`` block (or None) of one rollout.

    ``outcomes`` (one bool per call) replaces :func:`transcript_outcomes` when the caller knows them.
    """
    events = _events(text, params)
    first_call = next((pos for pos, kind, _ in events if kind == "call"), None)
    think = next(iter(tag_blocks(text, "think")), None)
    think_first = think is not None and (first_call is None or think[0] < first_call)
    paired = all(out is not None for out in _call_outputs(events))
    answers = tag_blocks(text, "answer")
    answer_last = len(answers) == 1 and text.count("<answer>") == 1 and not text[answers[0][1] :].strip()
    outcomes = transcript_outcomes(text, params) if outcomes is None else list(outcomes)
    success = sum(map(bool, outcomes)) / len(outcomes) if outcomes else float(not params.require_tool)
    return {
        "format": (think_first + paired + answer_last) / 3.0,
        "tool_success": success,
        "answer": extract(text, ToolVerifier.answer_policy),
    }


@dataclass(frozen=True)
class ToolGold:
    """The answer verifier (resolved when the record is prepared), its parsed params and prepared ground truth."""

    verifier: Verifier
    params: Any
    gold: Any


@dataclass(frozen=True)
class ToolParams:
    answer_verifier: str = "math"
    answer_params: Mapping = field(default_factory=dict)
    call_tag: str = "tool_call"
    output_tag: str = "tool_response"
    require_tool: bool = True  # no call scores tool_success 0 (see the module docstring)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.answer_verifier, str)
            or not self.answer_verifier
            or self.answer_verifier == "tool"
        ):
            raise FieldError(
                "reward.params.answer_verifier", f"must name another verifier, got {self.answer_verifier!r}"
            )
        if self.answer_params is None:
            object.__setattr__(self, "answer_params", {})
        if not isinstance(self.answer_params, Mapping):
            raise FieldError(
                "reward.params.answer_params", f"must be a mapping, got {self.answer_params!r:.80}"
            )
        for key in ("call_tag", "output_tag"):
            value = getattr(self, key)
            if not isinstance(value, str) or not _TAG_RE.fullmatch(value) or value in ("think", "answer"):
                raise FieldError(
                    f"reward.params.{key}", f"must be a tag name like 'tool_call', got {value!r}"
                )
        if self.call_tag == self.output_tag:
            raise FieldError("reward.params.output_tag", "must differ from call_tag")
        if not isinstance(self.require_tool, bool):
            raise FieldError(
                "reward.params.require_tool", f"must be true or false, got {self.require_tool!r}"
            )


class ToolVerifier(Verifier):
    """An agentic rollout: answer correctness, rollout structure and tool-call success."""

    name = "tool"
    answer_policy = "answer_tag"
    Params = ToolParams
    parts = PARTS
    isolated = True

    def __init__(self, verifiers: Mapping[str, Verifier]):
        """``verifiers``: the registry the answer verifier is looked up in (the registry passes itself)."""
        self.verifiers = verifiers

    def prepare(self, ground_truth: Any, params: ToolParams) -> ToolGold:
        inner = self.verifiers.get(params.answer_verifier)
        if inner is None:
            raise FieldError(
                "reward.params.answer_verifier",
                unknown_key_message("verifier", params.answer_verifier, self.verifiers),
            )
        try:
            inner_params = inner.parse_params(params.answer_params)
        except FieldError as exc:
            sub = exc.field.removeprefix("reward.params")
            raise FieldError(f"reward.params.answer_params{sub}", exc.message) from None
        return ToolGold(inner, inner_params, inner.prepare(ground_truth, inner_params))

    def slow_job(self, text: str, gold: ToolGold, params: ToolParams, ctx: Context):
        inner = gold.verifier
        answer = extract(text, self.answer_policy)
        if not inner.isolated or answer is None:
            return None
        job = inner.slow_job(f"<answer>{answer}</answer>", gold.gold, gold.params, ctx)
        return None if job is None else (inner, job)

    def run_slow_job(self, job):
        inner, inner_job = job
        return inner.run_slow_job(inner_job)

    def job_affinity(self, job):
        inner, inner_job = job
        return inner.job_affinity(inner_job)

    def score(self, text: str, gold: ToolGold, params: ToolParams, ctx: Context, slow=NOT_RUN) -> Verdict:
        outcomes = (ctx.rollout or {}).get("tool_outcomes")
        s = rollout_scores(text, params, outcomes)
        parts = {"tool_success": s["tool_success"]}
        if s["answer"] is None:
            return Verdict(0.0, s["format"], parts, reason="no_answer")
        inner = gold.verifier
        wrapped = f"<answer>{s['answer']}</answer>"
        if inner.isolated:
            verdict = inner.score(wrapped, gold.gold, gold.params, ctx, slow=slow)
        else:
            verdict = inner.score(wrapped, gold.gold, gold.params, ctx)
        return Verdict(verdict.accuracy, s["format"], parts, reason=verdict.reason, detail=verdict.detail)
