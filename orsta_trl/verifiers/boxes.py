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

**AP.** :func:`sample_ap` is what pycocotools' ``COCOeval`` (bbox, area 'all', maxDets 100) reports for one
image when every prediction is scored 1.0 (so ties keep prediction order, as COCO's stable sort does): each
normalised label is a category (or all boxes one category without label matching) and the mean runs over
categories with ground truth, as ``stats[0:3]``. Where COCO reports -1 (no countable ground truth) we report
1.0 when nothing is predicted, else 0.0. It is numpy, not pycocotools, so that it costs tens of microseconds.
"""

from __future__ import annotations

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


def allowed_ious(ious: np.ndarray, p_cat: np.ndarray, g_cat: np.ndarray) -> np.ndarray:
    """The IoUs of same-category pairs; 0 elsewhere."""
    return np.where(p_cat[:, None] == g_cat[None, :], ious, 0.0)


# ---------------------------------------------------------------- one image's COCO AP

# pycocotools' constants, built exactly as COCOeval's Params builds them.
_COCO_IOU = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_COCO_REC = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_COCO_MATCH = np.minimum(_COCO_IOU, 1 - 1e-10)
_I50, _I75 = int(np.flatnonzero(_COCO_IOU == 0.5)[0]), int(np.flatnonzero(_COCO_IOU == 0.75)[0])
_AREA_MAX = 1e5**2  # COCO's areaRng 'all' is [0, 1e5 ** 2]
_MAX_DETS = 100


def _coco_matches(allowed: np.ndarray, g_ig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching at the 10 IoU thresholds: (dtMatches > 0, dtIgnore) as bool arrays.

    Detections are taken in order (all scores equal); each takes the free ground truth with the highest IoU
    >= t (the last one on ties), preferring ground truth that is not ignored (``g_ig``, listed last).
    """
    n_det, n_gt = allowed.shape
    dtm = np.zeros((len(_COCO_MATCH), n_det), dtype=bool)
    dt_ig = np.zeros_like(dtm)
    cand = allowed >= _COCO_MATCH[0]
    if cand.sum(axis=0).max(initial=0) <= 1 and cand.sum(axis=1).max(initial=0) <= 1:
        # no two detections want the same ground truth, nor one detection two: matched iff IoU >= t
        dets = np.flatnonzero(cand.any(axis=1))
        gts = cand[dets].argmax(axis=1)
        dtm[:, dets] = allowed[dets, gts][None, :] >= _COCO_MATCH[:, None]
        dt_ig[:, dets] = dtm[:, dets] & g_ig[gts][None, :]
        return dtm, dt_ig
    ignored, low = g_ig.tolist(), float(_COCO_MATCH[0])
    prefs = []  # each detection's candidates in order of preference
    for d in np.flatnonzero(cand.any(axis=1)).tolist():
        row = allowed[d].tolist()
        ranked = sorted((ignored[g], -row[g], -g) for g in range(n_gt) if row[g] >= low)
        prefs.append((d, [(-g, -v) for _, v, g in ranked]))
    plain = not any(ignored)
    for t, thr in enumerate(_COCO_MATCH.tolist()):
        taken: set[int] = set()
        for d, ranked in prefs:
            for g, value in ranked:
                if value < thr:
                    if plain:  # sorted by IoU: nothing further qualifies
                        break
                elif g not in taken:
                    taken.add(g)
                    dtm[t, d], dt_ig[t, d] = True, ignored[g]
                    break
    return dtm, dt_ig


def coco_ap(allowed: np.ndarray, p_cat, g_cat, p_area, g_area) -> tuple[float, float, float]:
    """pycocotools' evaluateImg + accumulate + summarize for one image with all detection scores equal."""
    n_det = allowed.shape[0]
    g_ig = g_area > _AREA_MAX  # areas are >= 0: only the upper bound of 'all' can bite
    if g_ig.all():  # no countable ground truth: COCO says -1, we say whether anything was predicted
        value = 1.0 if n_det == 0 else 0.0
        return value, value, value
    if n_det == 0:
        return 0.0, 0.0, 0.0
    if g_ig.any():  # COCO puts ignored ground truth last
        order = np.argsort(g_ig, kind="mergesort")
        allowed, g_ig, g_cat = allowed[:, order], g_ig[order], g_cat[order]
    # maxDets: only the first 100 detections of each category count (later ones, matched after them, cannot
    # change their matches; ``keep`` drops them from the counts below)
    keep = np.ones(n_det, dtype=bool)
    if n_det > _MAX_DETS:
        seen: dict[int, int] = {}
        for i, cat in enumerate(p_cat.tolist()):
            seen[cat] = seen.get(cat, 0) + 1
            keep[i] = seen[cat] <= _MAX_DETS
    dtm, dt_ig = _coco_matches(allowed, g_ig)
    p_out = p_area > _AREA_MAX
    if p_out.any():
        dt_ig |= ~dtm & p_out[None, :]
    npig = np.bincount(g_cat[~g_ig])
    cats = np.flatnonzero(npig)
    npig = npig[cats].astype(float)
    # Other categories' (and truncated) detections stay in each row as "ignored" entries: like COCO's ignored
    # detections they repeat the previous (recall, precision) point and leave the interpolation unchanged.
    member = ((p_cat[None, :] == cats[:, None]) & keep[None, :])[:, None, :]
    counted = member & ~dt_ig
    tp = np.cumsum(counted & dtm, axis=2, dtype=float)
    tp_fp = np.cumsum(counted, axis=2, dtype=float)  # == fp + tp, exactly (small integers)
    rc = tp / npig[:, None, None]
    pr = np.maximum.accumulate((tp / (tp_fp + np.spacing(1)))[:, :, ::-1], axis=2)[:, :, ::-1]
    # COCO reads pr at searchsorted(rc, recThrs, "left") for 101 recall thresholds (0 past the end); so entry
    # i is read once per threshold in (rc[i-1], rc[i]], which these counts give.
    upto = np.searchsorted(_COCO_REC, rc, side="right")
    reads = upto.copy()
    reads[:, :, 1:] -= upto[:, :, :-1]
    ap_kt = (reads * pr).sum(axis=2)  # x 101: (categories, IoU thresholds)
    n_cat, scale = len(cats), 1.0 / len(_COCO_REC)
    ap = float(ap_kt.sum()) * scale / ap_kt.size
    return ap, float(ap_kt[:, _I50].sum()) * scale / n_cat, float(ap_kt[:, _I75].sum()) * scale / n_cat


def sample_ap(pred_boxes, gt_boxes, match_labels: bool = True) -> tuple[float, float, float]:
    """The image's COCO (AP, AP50, AP75) for (x1, y1, x2, y2, label) boxes, every prediction scored 1.0."""
    p, g = coords_array(pred_boxes), coords_array(gt_boxes)
    p_cat, g_cat = label_categories([b[4] for b in pred_boxes], [b[4] for b in gt_boxes], match_labels)
    allowed = allowed_ious(iou_matrix(p, g), p_cat, g_cat)
    return coco_ap(allowed, p_cat, g_cat, areas(p), areas(g))
