"""Boxes: pulling Qwen2.5-VL grounding boxes out of a completion, IoU, and one image's COCO AP.

**Parsing.** The prediction is the JSON list inside the last ``<answer>...</answer>`` block (an ``<answer>`` left
open by a truncated completion counts); without an answer block it is the first JSON array of the whole
completion. The first fenced code block of that region is searched first. Items look like
``{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}``; a lone such dictionary counts as a list of one.
Tolerated, beyond strict JSON, where a list of objects (or a lone object) does not parse as it stands:
Python-style single-quoted strings (``{'label': "it's"}``), a trailing comma, and a truncated tail
(``[{...complete box...}, {"bbox_2d": [5, 6`` keeps the complete boxes and counts the unfinished one as
invalid). Where several arrays appear, the first one that is empty or holds a dictionary wins over earlier
arrays of plain values (``"3 cats [1, 2, 3] ... [{...}]"``). Work on adversarial text is bounded.
An item is dropped and counted in ``n_invalid`` when it is not a dictionary, lacks ``bbox_2d``, or its
``bbox_2d`` is not four real, finite numbers (strings and booleans are not numbers) with ``x2 > x1`` and
``y2 > y1`` and a positive, finite area. A missing or non-string ``label`` becomes ``""``.

Matching and one image's COCO AP are in :mod:`.box_match`.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orsta_trl.verifiers.answer import extract, strip_code_fences

Box = tuple[float, float, float, float, str]

_DECODER = json.JSONDecoder()
_MAX_STARTS = 256  # bracket positions tried per region (bounds the work on adversarial text)
_MAX_REPAIRS = 32  # closing braces tried when repairing a truncated list
_MAX_LENIENT = 8  # lenient (quote-rewriting, repairing) attempts per region, each linear in its length
_BOX_START_RE = re.compile(r"\[\s*\{|\{\s*'")
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'((?:[^\'\\]|\\.)*)\'', re.DOTALL)


@dataclass(frozen=True)
class ParsedBoxes:
    """``boxes``: the valid boxes, in order; ``n_invalid``: items dropped; ``found``: a JSON list (or a lone
    box dictionary) was found; ``explicit_empty``: that list was ``[]``."""

    boxes: list[Box]
    n_invalid: int
    found: bool
    explicit_empty: bool


_NOTHING = ParsedBoxes([], 0, False, False)


def as_box(item: Any) -> Box | None:
    """``item`` as ``(x1, y1, x2, y2, label)``, or None when it is not a usable box (see :func:`box_problem`)."""
    if not isinstance(item, dict):
        return None
    coords = item.get("bbox_2d")
    if not isinstance(coords, list | tuple) or len(coords) != 4:
        return None
    for value in coords:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
    try:
        x1, y1, x2, y2 = map(float, coords)
    except OverflowError:  # an int too large for a float
        return None
    width, height = x2 - x1, y2 - y1  # NaN and infinities all fail below
    if not (width > 0 and height > 0 and 0 < width * height < math.inf):
        return None
    label = item.get("label")
    return (x1, y1, x2, y2, label if isinstance(label, str) else "")


def box_problem(item: Any) -> str | None:
    """Why ``item`` is not a usable ``{"bbox_2d": [x1, y1, x2, y2], ...}`` box, or None when it is."""
    if as_box(item) is not None:
        return None
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
        except OverflowError:
            return "'bbox_2d' holds a number too large for a float"
    x1, y1, x2, y2 = map(float, coords)
    if not (x2 > x1 and y2 > y1):
        return f"'bbox_2d' must satisfy x2 > x1 and y2 > y1, got {list(coords)!r}"
    return f"'bbox_2d' must have a positive, finite area, got {list(coords)!r}"


def _raw_decode(text: str, start: int) -> tuple[Any, int] | None:
    try:
        return _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError, MemoryError):
        return None


def _repair_truncated(text: str) -> tuple[list, bool] | None:
    """A list of objects cut short, closed after its last complete ``}``: (items, an item was dropped)."""
    hi = len(text)
    for _ in range(_MAX_REPAIRS):
        cut = text.rfind("}", 0, hi)
        if cut < 0:
            return None
        decoded = _raw_decode(text[: cut + 1] + "]", 0)
        if decoded is not None and isinstance(decoded[0], list):
            rest = text[cut + 1 :].lstrip().lstrip(",").lstrip()
            return decoded[0], not (rest == "" or rest.startswith("]"))
        hi = cut
    return None


def _double_quoted(text: str) -> str:
    """``text`` with Python-style single-quoted strings rewritten as JSON strings (double-quoted ones kept)."""

    def fix(match: re.Match) -> str:
        inner = match.group(1)
        return match.group(0) if inner is None else '"' + inner.replace("\\'", "'").replace('"', '\\"') + '"'

    return _QUOTED_RE.sub(fix, text)


def _decode_at(text: str, start: int, lenient: bool) -> tuple[Any, int, bool]:
    """The JSON value at ``start`` (or None), where to look next, and whether a truncated item was dropped.

    Strict JSON first; then, when ``lenient`` (for what looks like a list of objects or a single-quoted
    object), single quotes rewritten and a truncated tail cut off.
    """
    decoded = _raw_decode(text, start)
    if decoded is not None:
        return decoded[0], decoded[1], False
    if not lenient:
        return None, start + 1, False
    body = text[start:]
    if "'" in body:
        body = _double_quoted(body)
        decoded = _raw_decode(body, 0)
        if decoded is not None:
            return decoded[0], start + 1, False
    if body[0] == "[" and (repaired := _repair_truncated(body)) is not None:
        return repaired[0], start + 1, repaired[1]
    return None, start + 1, False


def _find_list(text: str) -> tuple[list | None, bool]:
    """The prediction list in ``text`` (or None) and whether a truncated item was dropped from it."""
    fallback: tuple[list, bool] | None = None
    pos, lenient_left = 0, _MAX_LENIENT
    for _ in range(_MAX_STARTS):
        square, curly = text.find("[", pos), text.find("{", pos)
        start = min(square, curly) if square >= 0 and curly >= 0 else max(square, curly)
        if start < 0:
            break
        lenient = lenient_left > 0 and _BOX_START_RE.match(text, start) is not None
        lenient_left -= lenient
        value, pos, dropped = _decode_at(text, start, lenient)
        if isinstance(value, list):
            if not value or any(isinstance(item, dict) for item in value):
                return value, dropped
            if fallback is None:
                fallback = (value, dropped)
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
        region = extract(text, "answer_tag_open")
        items, dropped = None, False
        fenced = strip_code_fences(region)
        if fenced != region:
            items, dropped = _find_list(fenced)
        if items is None:
            items, dropped = _find_list(region)
        if items is None:
            return _NOTHING
        boxes = [box for box in map(as_box, items) if box is not None]
        n_invalid = len(items) - len(boxes) + int(dropped)
        return ParsedBoxes(boxes, n_invalid, True, len(items) == 0 and not dropped)
    except Exception:  # a parser must never take a training step down
        return _NOTHING


# ---------------------------------------------------------------- geometry


def coords_array(boxes: Any) -> np.ndarray:
    """(N, 4) float array from an array or from a sequence of (x1, y1, x2, y2[, label]) boxes."""
    if isinstance(boxes, np.ndarray):
        return boxes.astype(float, copy=False).reshape(-1, 4)
    return np.array([b[:4] for b in boxes], dtype=float).reshape(-1, 4)


def areas(xyxy: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) [x1, y1, x2, y2] boxes, as COCO computes them (w * h)."""
    return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoUs of every box of ``a`` (N x [x1, y1, x2, y2]) with every box of ``b``, as an (N, M) array.

    Computed with COCO's arithmetic (via x, y, w, h, as pycocotools' ``bbIou``) so that ties at a threshold
    resolve exactly as in pycocotools.
    """
    a, b = coords_array(a), coords_array(b)
    ax, ay, aw, ah = a[:, 0], a[:, 1], a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    bx, by, bw, bh = b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    iw = np.minimum((aw + ax)[:, None], (bw + bx)[None, :]) - np.maximum(ax[:, None], bx[None, :])
    ih = np.minimum((ah + ay)[:, None], (bh + by)[None, :]) - np.maximum(ay[:, None], by[None, :])
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = inter / ((aw * ah)[:, None] + (bw * bh)[None, :] - inter)
    return np.where(overlap, out, 0.0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two [x1, y1, x2, y2] boxes (0 when they do not overlap)."""
    return float(iou_matrix([a], [b])[0, 0])


def label_categories(pred_labels: Sequence[str], gt_labels: Sequence[str], match_labels: bool):
    """Integer categories of normalised labels (-1: a predicted label absent from the ground truth)."""
    if not match_labels:
        return np.zeros(len(pred_labels), dtype=int), np.zeros(len(gt_labels), dtype=int)
    ids: dict[str, int] = {}
    g = [ids.setdefault(label.strip().lower(), len(ids)) for label in gt_labels]
    p = [ids.get(label.strip().lower(), -1) for label in pred_labels]
    return np.array(p, dtype=int), np.array(g, dtype=int)


@functools.lru_cache(maxsize=4096)
def resized_scale(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[float, float]:
    """Factors (x, y) from Qwen2.5-VL's resized model input (``smart_resize``: sides multiples of 28 within the
    pixel bounds) back to the original ``width x height`` image: the frame the model answers boxes in."""
    from qwen_vl_utils import smart_resize  # imports torch: only when a resized frame is first needed

    resized_h, resized_w = smart_resize(
        height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return width / resized_w, height / resized_h
