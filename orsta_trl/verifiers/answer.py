"""Pulling the answer out of a completion: one function, :func:`extract`, and a declared policy per verifier.

Every verifier names its policy in ``answer_policy``; :data:`POLICIES` says what each one reads, and the
README's verifier table lists them. The building blocks (``<answer>`` blocks, ``\\boxed{}``, code fences) are
below; verifiers call :func:`extract`, not the blocks, so that "the answer" of a policy means one thing.
"""

from __future__ import annotations

import re

_OPEN_ANSWER_RE = re.compile(r"<answer>(.*)\Z", re.DOTALL)
_FENCE_RE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|\Z)", re.DOTALL)
_INTEGER_RE = re.compile(r"[-+]?\d[\d,]*")
_BOXED_INTEGER_RE = re.compile(r"\s*([-+]?\d[\d,]*)\s*")

#: What each policy reads; ``None`` from :func:`extract` means the completion has no answer under it.
POLICIES: dict[str, str] = {
    "answer_tag": "the last complete <answer>...</answer> block; none without one",
    "answer_tag_or_text": "the last complete <answer> block, else the whole completion",
    "answer_tag_open": "the last complete <answer> block, else an <answer> left open by truncation, "
    "else the whole completion",
    "json": "the last complete <answer> block (else the whole completion), inside its first code fence, stripped",
    "boxed_region": "the last complete <answer> block (else the whole completion) when it holds a complete "
    "\\boxed{}; every box in it is read",
    "number": "the integer in the last \\boxed{} of the <answer> block (else of the whole completion), "
    "else the last integer there",
    "answer_or_boxed": "the last complete <answer> block, else the content of the last \\boxed{}; "
    "none without either",
    "completion": "the whole completion as it is: user verifiers and TRL reward functions read what they like",
}


def extract(text: str, policy: str) -> str | None:
    """The answer that ``policy`` (a key of :data:`POLICIES`) reads in ``text``, or None when there is none.

    >>> extract("<think>x</think><answer> 42 </answer>", "answer_tag")
    ' 42 '
    >>> extract("no tags", "answer_tag") is None, extract("no tags", "answer_tag_or_text")
    (True, 'no tags')
    >>> extract('<answer>```json\\n{"a": 1}\\n```</answer>', "json")
    '{"a": 1}'
    >>> extract("<answer>7 cats, not 6: \\\\boxed{7}</answer>", "number")
    '7'
    >>> extract("so \\\\boxed{1}, \\\\boxed{2}", "boxed_region")
    'so \\\\boxed{1}, \\\\boxed{2}'
    """
    if policy == "completion":
        return text
    if policy == "answer_tag":
        return answer_block(text)
    if policy == "answer_tag_or_text":
        return _region(text)
    if policy == "answer_tag_open":
        found = answer_block_or_tail(text)
        return text if found is None else found
    if policy == "json":
        return strip_code_fences(_region(text)).strip()
    if policy == "boxed_region":
        region = _region(text)
        return region if boxed_contents(region) else None
    if policy == "number":
        region = _region(text)
        boxed = last_boxed(region)
        match = _BOXED_INTEGER_RE.fullmatch(boxed) if boxed is not None else None
        if match:
            return match.group(1)
        numbers = _INTEGER_RE.findall(region)
        return numbers[-1] if numbers else None
    if policy == "answer_or_boxed":
        block = answer_block(text)
        return block if block is not None else last_boxed(text)
    raise ValueError(f"unknown answer policy {policy!r} (valid: {', '.join(POLICIES)})")


def has_answer_markup(text: str) -> bool:
    """Whether the completion marks an answer at all: an ``<answer>`` block or a complete ``\\boxed{}``."""
    return answer_block(text) is not None or last_boxed(text) is not None


def _region(text: str) -> str:
    block = answer_block(text)
    return text if block is None else block


def answer_block(text: str) -> str | None:
    """The content of the last complete ``<answer>...</answer>`` block, else None.

    >>> answer_block("<think>x</think><answer> 42 </answer>")
    ' 42 '
    >>> answer_block("no tags") is None
    True
    """
    blocks = tag_blocks(text, "answer")
    return blocks[-1][2] if blocks else None


def tag_blocks(text: str, tag: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every complete ``<tag>...</tag>`` block, as ``re.finditer`` with
    ``<tag>(.*?)</tag>`` finds them, in linear time: the regex rescans to the end from every unclosed
    ``<tag>``, which costs seconds on ``"<answer>" * 20_000``.

    >>> tag_blocks("<a>1</a> <a>2 <a>3</a>", "a")
    [(0, 8, '1'), (9, 22, '2 <a>3')]
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    found, position = [], 0
    while (start := text.find(opening, position)) >= 0:
        end = text.find(closing, start + len(opening))
        if end < 0:
            break
        position = end + len(closing)
        found.append((start, position, text[start + len(opening) : end]))
    return found


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


def boxed_contents(text: str) -> list[str]:
    """The contents of every complete ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced, in order.

    >>> boxed_contents(r"\\boxed{1}, \\boxed{\\frac{1}{2}} and \\boxed{open")
    ['1', '\\\\frac{1}{2}']
    """
    found, start = [], 0
    next_at = {tag: text.find(tag) for tag in ("\\boxed{", "\\fbox{")}  # each tag's next hit, kept: linear
    while True:
        for tag, at in next_at.items():
            if 0 <= at < start:
                next_at[tag] = text.find(tag, start)
        hits = [at for at in next_at.values() if at >= 0]
        if not hits:
            return found
        i = text.index("{", min(hits)) + 1
        depth, j = 1, i
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            return found
        found.append(text[i : j - 1])
        start = j


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
