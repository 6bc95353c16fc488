"""What a tool call returned, with its real outcome attached, and how the rewards layer reads it back.

TRL's tool loop turns every tool result into the text of a tool message (``str(result)``) and hands the
messages to the reward function. A :class:`ToolResult` is a ``str`` that keeps its ``ok`` flag through that
(its ``__str__`` is itself), so the reward sees whether the call really succeeded: a program that printed the
word "Error" still succeeded, and a model cannot fake a success by writing a ``<tool_response>`` itself.
"""

from __future__ import annotations

from orsta_trl.verifiers.tool import reports_failure


class ToolResult(str):
    """A tool's text result and whether the call succeeded.

    >>> r = ToolResult("Error: division by zero", ok=False)
    >>> str(r) is r, r.ok, call_succeeded(r), call_succeeded("42"), call_succeeded("{'error': 'x'}")
    (True, False, False, True, False)
    """

    ok: bool

    def __new__(cls, text: str, ok: bool = True):
        obj = super().__new__(cls, text)
        obj.ok = bool(ok)
        return obj

    def __str__(self) -> str:  # keeps the flag through TRL's str(result)
        return self


def call_succeeded(content) -> bool:
    """Whether a tool message's content reports a successful call.

    Args:
        content: a tool message's content: a :class:`ToolResult` (its flag), a list of content parts (an image
            result: success), or plain text (TRL's own ``{'error': ...}`` for an unknown tool or a raised
            exception, or text that :func:`~orsta_trl.verifiers.tool.reports_failure`: failure).

    Returns:
        True for a success.
    """
    ok = getattr(content, "ok", None)
    if ok is not None:
        return bool(ok)
    if isinstance(content, list):
        return not any(isinstance(p, dict) and reports_failure(p.get("text") or "") for p in content)
    return not (reports_failure(content) or str(content).lstrip().startswith("{'error'"))
