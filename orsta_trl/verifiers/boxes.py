"""Pulling Qwen2.5-VL grounding boxes out of a completion, and checking box dictionaries.

The prediction is the JSON list inside the last ``<answer>...</answer>`` block (an ``<answer>`` left open by a
truncated completion counts); without an answer block it is the first JSON array of the whole completion.
The first fenced code block of that region is searched first. Items look like
``{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}``; a lone such dictionary counts as a list of one.

Tolerated, beyond strict JSON: single-quoted strings (tried only when the text is not valid JSON as it
stands), a trailing comma, and a truncated tail: ``[{...complete box...}, {"bbox_2d": [5, 6`` keeps the
complete boxes and counts the unfinished one as invalid. Where several arrays appear, the first one that is
empty or holds a dictionary wins over earlier arrays of plain values (``"3 cats [1, 2, 3] ... [{...}]"``).

An item is dropped and counted in ``n_invalid`` when it is not a dictionary, lacks ``bbox_2d``, or its
``bbox_2d`` is not four real, finite numbers (strings and booleans are not numbers) with ``x2 > x1`` and
``y2 > y1`` and a finite area. A missing or non-string ``label`` becomes ``""``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from orsta_trl.verifiers.answer import answer_block_or_tail, strip_code_fences

Box = tuple[float, float, float, float, str]

_DECODER = json.JSONDecoder()
_MAX_STARTS = 256  # bracket positions tried per region (bounds the work on adversarial text)
_MAX_REPAIRS = 32  # closing braces tried when repairing a truncated list


@dataclass(frozen=True)
class ParsedBoxes:
    """``boxes``: the valid boxes, in order; ``n_invalid``: items dropped; ``found``: a JSON list (or a lone
    box dictionary) was found; ``explicit_empty``: that list was ``[]``."""

    boxes: list[Box]
    n_invalid: int
    found: bool
    explicit_empty: bool


_NOTHING = ParsedBoxes([], 0, False, False)


def box_problem(item: Any) -> str | None:
    """Why ``item`` is not a usable ``{"bbox_2d": [x1, y1, x2, y2], ...}`` box, or None when it is."""
    if not isinstance(item, dict):
        return f"must be an object with a 'bbox_2d' key, got {type(item).__name__}"
    coords = item.get("bbox_2d")
    if coords is None:
        return "has no 'bbox_2d'"
    if not isinstance(coords, list | tuple) or len(coords) != 4:
        return f"'bbox_2d' must be a list of 4 numbers [x1, y1, x2, y2], got {coords!r}"
    for value in coords:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"'bbox_2d' must hold numbers, got {value!r}"
        try:
            if not math.isfinite(value):
                return f"'bbox_2d' must hold finite numbers, got {value!r}"
        except OverflowError:  # an int too large for a float
            return "'bbox_2d' holds a number too large for a float"
    x1, y1, x2, y2 = (float(v) for v in coords)
    if not (x2 > x1 and y2 > y1):
        return f"'bbox_2d' must satisfy x2 > x1 and y2 > y1, got {list(coords)!r}"
    if not math.isfinite((x2 - x1) * (y2 - y1)):
        return f"'bbox_2d' area overflows, got {list(coords)!r}"
    return None


def to_box(item: dict) -> Box:
    """A checked item (``box_problem(item) is None``) as ``(x1, y1, x2, y2, label)``."""
    x1, y1, x2, y2 = (float(v) for v in item["bbox_2d"])
    label = item.get("label")
    return (x1, y1, x2, y2, label if isinstance(label, str) else "")


def _raw_decode(text: str, start: int) -> tuple[Any, int] | None:
    try:
        return _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError, MemoryError):
        return None


def _repair_truncated(text: str, start: int) -> tuple[list, int, bool] | None:
    """Close a list of objects cut short after its last complete ``}``: (items, end, an item was dropped)."""
    if not text[start + 1 :].lstrip().startswith("{"):
        return None
    hi = len(text)
    for _ in range(_MAX_REPAIRS):
        cut = text.rfind("}", start, hi)
        if cut < 0:
            return None
        decoded = _raw_decode(text[start : cut + 1] + "]", 0)
        if decoded is not None and isinstance(decoded[0], list):
            rest = text[cut + 1 :].lstrip().lstrip(",").lstrip()
            return decoded[0], cut + 1, not (rest == "" or rest.startswith("]"))
        hi = cut
    return None


def _decode_at(text: str, swapped: str | None, start: int) -> tuple[Any, int, bool]:
    """The JSON value starting at ``start`` (or None), the index after it, and whether an item was dropped."""
    for candidate in (text, swapped):
        if candidate is None:
            continue
        decoded = _raw_decode(candidate, start)
        if decoded is not None:
            return decoded[0], decoded[1], False
    if text[start] == "[":
        for candidate in (text, swapped):
            if candidate is not None and (repaired := _repair_truncated(candidate, start)) is not None:
                return repaired
    return None, start + 1, False


def _find_list(text: str) -> tuple[list | None, bool]:
    """The prediction list in ``text`` (or None) and whether a truncated item was dropped from it."""
    swapped = text.replace("'", '"') if "'" in text else None
    fallback: tuple[list, bool] | None = None
    pos = 0
    for _ in range(_MAX_STARTS):
        square, curly = text.find("[", pos), text.find("{", pos)
        start = min(square, curly) if square >= 0 and curly >= 0 else max(square, curly)
        if start < 0:
            break
        value, end, dropped = _decode_at(text, swapped, start)
        if isinstance(value, list):
            if not value or any(isinstance(item, dict) for item in value):
                return value, dropped
            if fallback is None:
                fallback = (value, dropped)
            pos = end
        elif isinstance(value, dict) and "bbox_2d" in value:
            return [value], dropped
        else:
            pos = start + 1
    return fallback if fallback is not None else (None, False)


def parse_boxes(text: Any) -> ParsedBoxes:
    """Parse the predicted boxes of a completion; never raises.

    >>> parse_boxes('<answer>[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6')
    ParsedBoxes(boxes=[(1.0, 2.0, 3.0, 4.0, 'a')], n_invalid=1, found=True, explicit_empty=False)
    """
    if not isinstance(text, str):
        return _NOTHING
    try:
        region = answer_block_or_tail(text)
        if region is None:
            region = text
        items, dropped = None, False
        fenced = strip_code_fences(region)
        if fenced != region:
            items, dropped = _find_list(fenced)
        if items is None:
            items, dropped = _find_list(region)
        if items is None:
            return _NOTHING
        boxes = [to_box(item) for item in items if box_problem(item) is None]
        n_invalid = len(items) - len(boxes) + int(dropped)
        return ParsedBoxes(boxes, n_invalid, True, len(items) == 0 and not dropped)
    except Exception:  # a parser must never take a training step down
        return _NOTHING
