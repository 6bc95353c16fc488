"""Detection / grounding rewards: V-Triune's dynamic-IoU detection reward, plus per-sample COCO AP.

Accuracy at an IoU threshold ``t`` (V-Triune, "One RL to See Them All", Sec. 3.2): predicted boxes are matched
one-to-one to ground-truth boxes among pairs with IoU >= t (and the same label when ``match_labels``). With
``n_match`` matches and ``S`` the sum of their IoUs::

    mean_iou = S / n_gt;  miss = (n_gt - n_match) / n_gt;  false_alarm = (n_pred - n_match) / n_pred (0 if none)
    completeness = 1 - (miss + false_alarm) / 2
    accuracy = count_penalty ** |n_pred - n_gt| * ((1 - c) * mean_iou + c * completeness)

and, for an empty ground truth, 1 when nothing is predicted else 0. ``t`` follows the schedule in
:mod:`orsta_trl.verifiers.schedule` (0.85 -> 0.95 -> 0.99) unless a fixed number or ``"average"`` (the mean of
the accuracies at 0.50, 0.55, ..., 0.95 and 0.99) is asked for.

Where we deviate from (or go beyond) the paper:

* Matching is pluggable. ``hungarian`` (default) maximises the total IoU over the pairs allowed at ``t``; the
  paper's two greedy matchers are kept as ``greedy_label_first`` (each ground-truth box in order takes the free
  prediction with the highest IoU) and ``greedy_iou_first`` (all pairs by IoU, descending, ties in prediction
  then ground-truth order). All three agree whenever no box has two candidates.
* Boxes are mapped back to the original image before scoring (``pred_coords``); the paper scores in the resized
  frame. Predictions are not clipped to the image.
* Invalid boxes are dropped (reason ``invalid_boxes``) rather than failing the whole answer; they do not count as
  predictions. A box without a string label gets label ``""`` and matches nothing while ``match_labels``.
* Extra parts (diagnostics, not rewards): ``precision@t`` / ``recall@t`` at t = 0.5, 0.75, 0.95, 0.99 with the
  record's matcher (precision with no prediction = 1 when there is no ground truth else 0; recall with no
  ground truth = 1 when nothing is predicted else 0), and the sample's COCO ``ap``, ``ap50``, ``ap75``.
* AP equals pycocotools' ``COCOeval`` on the single image (bbox, area 'all', maxDets 100, every prediction
  scored 1.0 so ties keep prediction order; each normalised label is a category and the mean runs over the
  categories with ground truth, as ``stats[0]``; with ``match_labels`` false every box is one category). Where
  COCO reports -1 (no countable ground truth) we report 1.0 if nothing is predicted, else 0.0.
* Scores are zeros with a reason (never an exception) for ``no_answer``, ``unparsable_boxes`` and
  ``no_image_size`` (missing, non-positive or unresizable image size when ``pred_coords`` needs it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_choice, check_number
from orsta_trl.verifiers.boxes import box_problem, parse_boxes, to_box
from orsta_trl.verifiers.schedule import iou_threshold_at

MATCHINGS = ("hungarian", "greedy_label_first", "greedy_iou_first")
PRED_COORDS = ("resized", "original", "norm1000")
AVERAGE_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10)) + (0.99,)
PR_THRESHOLDS = (0.5, 0.75, 0.95, 0.99)
PARTS = tuple(f"{kind}@{t}" for t in PR_THRESHOLDS for kind in ("precision", "recall")) + ("ap", "ap50", "ap75")

# pycocotools' constants, built exactly as COCOeval's Params builds them.
_COCO_IOU = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_COCO_REC = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_COCO_MATCH = np.minimum(_COCO_IOU, 1 - 1e-10)
_I50, _I75 = np.flatnonzero(_COCO_IOU == 0.5), np.flatnonzero(_COCO_IOU == 0.75)
_AREA_ALL = (0.0**2, 1e5**2)
_MAX_DETS = 100


def _coords(boxes: Any) -> np.ndarray:
    """(N, 4) float array from an array or from a sequence of (x1, y1, x2, y2[, label]) boxes."""
    if isinstance(boxes, np.ndarray):
        return boxes.astype(float, copy=False).reshape(-1, 4)
    return np.array([b[:4] for b in boxes], dtype=float).reshape(-1, 4)


def iou_matrix(a: Any, b: Any) -> np.ndarray:
    """IoUs of every box of ``a`` (N x [x1, y1, x2, y2]) with every box of ``b``, as an (N, M) array.

    Computed with COCO's arithmetic (via x, y, w, h, as pycocotools' ``bbIou``) so that ties at a threshold
    resolve exactly as in pycocotools.
    """
    a, b = _coords(a), _coords(b)
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


def _match_one(w: np.ndarray, matching: str) -> tuple[int, float]:
    """Matches and their IoU sum on ``w`` (pairs not allowed are 0)."""
    if matching == "hungarian":
        rows, cols = linear_sum_assignment(w, maximize=True)
        vals = w[rows, cols]
        vals = vals[vals > 0]
        return len(vals), float(vals.sum())
    pairs: list[tuple[int, int]] = []
    if matching == "greedy_label_first":
        free = np.ones(w.shape[0], dtype=bool)
        for j in range(w.shape[1]):
            col = np.where(free, w[:, j], 0.0)
            i = int(np.argmax(col))
            if col[i] > 0:
                free[i] = False
                pairs.append((i, j))
    else:  # greedy_iou_first
        cand = np.argwhere(w > 0)
        used_p, used_g = set(), set()
        for k in np.argsort(-w[cand[:, 0], cand[:, 1]], kind="stable"):
            i, j = int(cand[k, 0]), int(cand[k, 1])
            if i not in used_p and j not in used_g:
                used_p.add(i)
                used_g.add(j)
                pairs.append((i, j))
    return len(pairs), float(sum(w[i, j] for i, j in pairs))


def _match_counts(allowed: np.ndarray, thresholds: Sequence[float], matching: str) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold: number of matches and the sum of their IoUs (``allowed``: IoUs, 0 where not allowed)."""
    ts = np.asarray(thresholds, dtype=float)
    if allowed.size == 0:
        return np.zeros(len(ts)), np.zeros(len(ts))
    cand = allowed[None, :, :] >= ts[:, None, None]
    n = cand.sum(axis=(1, 2)).astype(float)
    s = np.where(cand, allowed[None], 0.0).sum(axis=(1, 2))
    conflict = (cand.sum(axis=2).max(axis=1) > 1) | (cand.sum(axis=1).max(axis=1) > 1)
    for k in np.flatnonzero(conflict):  # only then can the matchers disagree
        n[k], s[k] = _match_one(np.where(cand[k], allowed, 0.0), matching)
    return n, s


def _accuracy(n: np.ndarray, s: np.ndarray, n_pred: int, n_gt: int, c: float, penalty: float) -> np.ndarray:
    if n_gt == 0:
        return np.full(len(n), 1.0 if n_pred == 0 else 0.0)
    false_alarm = (n_pred - n) / n_pred if n_pred else 0.0
    completeness = 1.0 - ((n_gt - n) / n_gt + false_alarm) / 2.0
    return penalty ** abs(n_pred - n_gt) * ((1.0 - c) * s / n_gt + c * completeness)


def _categories(pred_labels: Sequence[str], gt_labels: Sequence[str], match_labels: bool):
    """Integer categories of normalised labels (-1: a predicted label absent from the ground truth)."""
    if not match_labels:
        return np.zeros(len(pred_labels), dtype=int), np.zeros(len(gt_labels), dtype=int)
    ids: dict[str, int] = {}
    g = [ids.setdefault(label.strip().lower(), len(ids)) for label in gt_labels]
    p = [ids.get(label.strip().lower(), -1) for label in pred_labels]
    return np.array(p, dtype=int), np.array(g, dtype=int)


def _allowed(ious: np.ndarray, p_cat: np.ndarray, g_cat: np.ndarray) -> np.ndarray:
    return np.where(p_cat[:, None] == g_cat[None, :], ious, 0.0)


def detection_score(
    pred_boxes: Sequence[Sequence[Any]],
    gt_boxes: Sequence[Sequence[Any]],
    threshold: float,
    matching: str = "hungarian",
    match_labels: bool = True,
    completeness_weight: float = 0.3,
    count_penalty: float = 0.6,
) -> float:
    """V-Triune's accuracy at IoU ``threshold`` (> 0) for (x1, y1, x2, y2, label) boxes in one frame."""
    p_cat, g_cat = _categories([b[4] for b in pred_boxes], [b[4] for b in gt_boxes], match_labels)
    allowed = _allowed(iou_matrix(pred_boxes, gt_boxes), p_cat, g_cat)
    n, s = _match_counts(allowed, [threshold], matching)
    return float(_accuracy(n, s, len(pred_boxes), len(gt_boxes), completeness_weight, count_penalty)[0])


def _coco_ap(allowed: np.ndarray, p_cat, g_cat, p_area, g_area) -> tuple[float, float, float]:
    """pycocotools' evaluateImg + accumulate + summarize for one image with all detection scores equal."""
    n_det, n_gt = allowed.shape
    keep = np.ones(n_det, dtype=bool)
    if n_det > _MAX_DETS:  # maxDets: the first 100 detections of each category
        seen: dict[int, int] = {}
        for i, cat in enumerate(p_cat.tolist()):
            seen[cat] = seen.get(cat, 0) + 1
            keep[i] = seen[cat] <= _MAX_DETS
    g_ig = (g_area < _AREA_ALL[0]) | (g_area > _AREA_ALL[1])
    if g_ig.all():  # no countable ground truth: COCO says -1, we say whether anything was predicted
        value = 1.0 if n_det == 0 else 0.0
        return value, value, value
    if n_det == 0:
        return 0.0, 0.0, 0.0
    order = np.argsort(g_ig, kind="mergesort")  # COCO puts ignored ground truth last
    allowed, g_ig, g_cat = allowed[:, order], g_ig[order], g_cat[order]
    n_thr = len(_COCO_IOU)
    dtm = np.zeros((n_thr, n_det), dtype=bool)
    dt_ig = np.zeros((n_thr, n_det), dtype=bool)
    cand = (allowed >= _COCO_MATCH[0]) & keep[:, None]
    if (cand.sum(axis=0) <= 1).all() and (cand.sum(axis=1) <= 1).all():  # no conflicts: closed form
        dets = np.flatnonzero(cand.any(axis=1))
        gts = cand[dets].argmax(axis=1)
        dtm[:, dets] = allowed[dets, gts][None, :] >= _COCO_MATCH[:, None]
        dt_ig[:, dets] = dtm[:, dets] & g_ig[gts][None, :]
    else:  # COCO's greedy loop, all thresholds at once: best free gt (last on ties), non-ignored first
        free = np.ones((n_thr, n_gt), dtype=bool)
        for d in np.flatnonzero(cand.any(axis=1)):
            row = allowed[d]
            c = free & (row[None, :] >= _COCO_MATCH[:, None])
            if g_ig.any():
                plain = c & ~g_ig[None, :]
                c = np.where(plain.any(axis=1)[:, None], plain, c)
            t = np.flatnonzero(c.any(axis=1))
            j = n_gt - 1 - np.argmax(np.where(c, row[None, :], -1.0)[:, ::-1], axis=1)[t]
            dtm[t, d], dt_ig[t, d], free[t, j] = True, g_ig[j], False
    p_out = (p_area < _AREA_ALL[0]) | (p_area > _AREA_ALL[1])
    dt_ig |= ~dtm & p_out[None, :]
    cats, npig = np.unique(g_cat[~g_ig], return_counts=True)
    # Other categories' (and truncated) detections stay in each row as "ignored" entries: like COCO's ignored
    # detections they repeat the previous (recall, precision) point and leave the interpolation unchanged.
    member = ((p_cat[None, :] == cats[:, None]) & keep[None, :])[:, None, :]
    tp = np.cumsum(member & dtm & ~dt_ig, axis=2, dtype=float)
    fp = np.cumsum(member & ~dtm & ~dt_ig, axis=2, dtype=float)
    rc = tp / npig.astype(float)[:, None, None]
    pr = np.maximum.accumulate((tp / (fp + tp + np.spacing(1)))[:, :, ::-1], axis=2)[:, :, ::-1]
    if rc.size * len(_COCO_REC) <= 4_000_000:
        inds = (rc[:, :, :, None] < _COCO_REC).sum(axis=2)  # == np.searchsorted(rc, recThrs, side="left")
    else:
        inds = np.array([[np.searchsorted(r, _COCO_REC, side="left") for r in rk] for rk in rc])
    q = np.where(inds < n_det, np.take_along_axis(pr, np.minimum(inds, n_det - 1), axis=2), 0.0)
    return float(q.mean()), float(q[:, _I50].mean()), float(q[:, _I75].mean())


def sample_ap(pred_boxes, gt_boxes, match_labels: bool = True) -> tuple[float, float, float]:
    """The image's COCO (AP, AP50, AP75) for (x1, y1, x2, y2, label) boxes, every prediction scored 1.0."""
    p, g = _coords(pred_boxes), _coords(gt_boxes)
    p_cat, g_cat = _categories([b[4] for b in pred_boxes], [b[4] for b in gt_boxes], match_labels)
    allowed = _allowed(iou_matrix(p, g), p_cat, g_cat)
    return _coco_ap(allowed, p_cat, g_cat, _areas(p), _areas(g))


def _areas(xyxy: np.ndarray) -> np.ndarray:
    return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])


@functools.lru_cache(maxsize=4096)
def _resized_scale(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[float, float]:
    from qwen_vl_utils import smart_resize  # imports torch: only when a resized box is first scored

    resized_h, resized_w = smart_resize(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)
    return width / resized_w, height / resized_h


def _scale(pred_coords: str, ctx: Context) -> tuple[float, float] | None:
    """Factors from the prediction's frame to the original image's pixels; None when the size is unusable."""
    if pred_coords == "original":
        return 1.0, 1.0
    if not ctx.image_sizes:
        return None
    try:
        width, height = ctx.image_sizes[0]
        if not (width > 0 and height > 0):
            return None
        if pred_coords == "norm1000":
            return width / 1000.0, height / 1000.0
        return _resized_scale(int(width), int(height), int(ctx.min_pixels), int(ctx.max_pixels))
    except Exception:
        return None


def _check_threshold(field_name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if isinstance(value, str):
        check_choice(field_name, value, allowed)
        return
    check_number(field_name, value, 0.0, 1.0)
    if value == 0:
        raise FieldError(field_name, "must lie in (0, 1], got 0")


@dataclass(frozen=True)
class DetectionParams:
    pred_coords: str = "resized"
    matching: str = "hungarian"
    match_labels: bool = True
    iou_threshold: float | str = "dynamic"
    completeness_weight: float = 0.3
    count_penalty: float = 0.6

    def __post_init__(self):
        check_choice("reward.params.pred_coords", self.pred_coords, PRED_COORDS)
        check_choice("reward.params.matching", self.matching, MATCHINGS)
        if not isinstance(self.match_labels, bool):
            raise FieldError("reward.params.match_labels", f"must be true or false, got {self.match_labels!r}")
        _check_threshold("reward.params.iou_threshold", self.iou_threshold, ("dynamic", "average"))
        check_number("reward.params.completeness_weight", self.completeness_weight, 0.0, 1.0)
        check_number("reward.params.count_penalty", self.count_penalty, 0.0, 1.0)


@dataclass(frozen=True)
class DetectionGold:
    """Prepared ground truth: (n, 4) boxes in original pixels, and their labels."""

    boxes: np.ndarray
    labels: tuple[str, ...]


class DetectionVerifier(Verifier):
    name = "detection"
    Params = DetectionParams
    parts = PARTS
    needs_image_size = True

    def prepare(self, ground_truth: Any, params: DetectionParams) -> DetectionGold:
        if not isinstance(ground_truth, list | tuple):
            raise FieldError("reward.ground_truth", f"must be a list of boxes, got {type(ground_truth).__name__}")
        for i, item in enumerate(ground_truth):
            problem = box_problem(item)
            if problem is None and not isinstance(item.get("label"), str):
                problem = f"'label' must be a string, got {item.get('label')!r}"
            if problem is not None:
                raise FieldError("reward.ground_truth", f"box {i} {problem}: {item!r}"[:300])
        boxes = [to_box(item) for item in ground_truth]
        return DetectionGold(_coords(boxes), tuple(b[4] for b in boxes))

    def score(self, text: str, gold: DetectionGold, params: DetectionParams, ctx: Context) -> Verdict:
        parsed = parse_boxes(text)
        zeros = dict.fromkeys(PARTS, 0.0)
        if not parsed.found:
            return Verdict(0.0, 0.0, zeros, "no_answer")
        if not parsed.boxes and not parsed.explicit_empty:
            return Verdict(0.0, 0.0, zeros, "unparsable_boxes")
        scale = _scale(params.pred_coords, ctx)
        if scale is None:
            return Verdict(0.0, 1.0, zeros, "no_image_size")
        thresholds = _thresholds(params, ctx)
        pred = _coords(parsed.boxes) * np.array([scale[0], scale[1], scale[0], scale[1]])
        with np.errstate(over="ignore", invalid="ignore"):
            ok = np.isfinite(_areas(pred)) & (pred[:, 2] > pred[:, 0]) & (pred[:, 3] > pred[:, 1])
        if not ok.all():  # degenerate or overflowing once rescaled
            pred = pred[ok]
        labels = [b[4] for b, good in zip(parsed.boxes, ok, strict=True) if good]
        n_invalid = parsed.n_invalid + int(len(ok) - ok.sum())
        p_cat, g_cat = _categories(labels, gold.labels, params.match_labels)
        allowed = _allowed(iou_matrix(pred, gold.boxes), p_cat, g_cat)
        n_pred, n_gt = len(pred), len(gold.labels)
        n, s = _match_counts(allowed, thresholds + PR_THRESHOLDS, params.matching)
        acc = _accuracy(n[: len(thresholds)], s[: len(thresholds)], n_pred, n_gt,
                        params.completeness_weight, params.count_penalty)
        parts: dict[str, float] = {}
        for t, matched in zip(PR_THRESHOLDS, n[len(thresholds):], strict=True):
            parts[f"precision@{t}"] = float(matched / n_pred) if n_pred else float(n_gt == 0)
            parts[f"recall@{t}"] = float(matched / n_gt) if n_gt else float(n_pred == 0)
        parts["ap"], parts["ap50"], parts["ap75"] = _coco_ap(allowed, p_cat, g_cat, _areas(pred), _areas(gold.boxes))
        return Verdict(float(acc.mean()), 1.0, parts, "invalid_boxes" if n_invalid else None)


def _thresholds(params: DetectionParams, ctx: Context) -> tuple[float, ...]:
    """The accuracy's IoU threshold(s): the context's override, else the record's setting."""
    setting = params.iou_threshold if ctx.iou_override is None else ctx.iou_override
    if setting == "average":
        return AVERAGE_THRESHOLDS
    if setting == "dynamic":
        return (iou_threshold_at(ctx.progress, ctx.iou_schedule),)
    if isinstance(setting, bool) or not isinstance(setting, int | float) or not 0 < setting <= 1:
        raise ValueError(f"iou_override must be a number in (0, 1] or 'average', got {setting!r}")
    return (float(setting),)


__all__ = ["DetectionVerifier", "DetectionParams", "DetectionGold", "detection_score", "iou", "iou_matrix",
           "sample_ap", "AVERAGE_THRESHOLDS", "PR_THRESHOLDS", "PARTS", "MATCHINGS", "PRED_COORDS"]
