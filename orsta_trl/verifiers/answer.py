"""Pulling the answer out of a completion: ``<answer>`` blocks, ``\\boxed{}``, code fences, JSON.

Shared by every verifier so that "the answer" means the same thing across task families.
"""

from __future__ import annotations

import re

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_OPEN_ANSWER_RE = re.compile(r"<answer>(.*)\Z", re.DOTALL)
_FENCE_RE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|\Z)", re.DOTALL)


def answer_block(text: str) -> str | None:
    """The content of the last complete ``<answer>...</answer>`` block, else None.

    >>> answer_block("<think>x</think><answer> 42 </answer>")
    ' 42 '
    >>> answer_block("no tags") is None
    True
    """
    matches = _ANSWER_RE.findall(text)
    return matches[-1] if matches else None


def answer_block_or_tail(text: str) -> str | None:
    """Like :func:`answer_block`, but also accepts an ``<answer>`` left open by a truncated completion."""
    block = answer_block(text)
    if block is not None:
        return block
    match = _OPEN_ANSWER_RE.search(text)
    return match.group(1) if match else None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced, else None.

    >>> last_boxed(r"so \\boxed{\\frac{1}{2}} and \\boxed{3}")
    '3'
    >>> last_boxed(r"\\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> last_boxed(r"\\boxed{unclosed") is None
    True
    """
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def strip_code_fences(text: str) -> str:
    """Return the content of the first fenced code block, or the text unchanged when there is none.

    >>> strip_code_fences('```json\\n[1, 2]\\n```')
    '[1, 2]\\n'
    """
    match = _FENCE_RE.search(text)
    return match.group(1) if match else text


def count_tag(text: str, tag: str) -> int:
    """How many times ``tag`` occurs literally in ``text``."""
    return text.count(tag)


def think_answer_format(text: str) -> float:
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` that appears exactly once.

    >>> think_answer_format("<think>a</think><answer>b</answer>")
    1.0
    >>> think_answer_format("<answer>b</answer><answer>c</answer>")
    0.0
    """
    return float(
        sum(0.25 for tag in ("<think>", "</think>", "<answer>", "</answer>") if text.count(tag) == 1)
    )
