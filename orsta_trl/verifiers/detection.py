"""Detection / grounding rewards: V-Triune's dynamic-IoU detection reward, plus per-sample COCO AP.

Accuracy at an IoU threshold ``t`` (V-Triune, "One RL to See Them All"): predicted boxes are matched one-to-one
to ground-truth boxes among pairs with IoU >= t (and the same label, case-insensitive, when ``match_labels``).
With ``n_match`` matches and ``S`` the sum of their IoUs::

    mean_iou = S / n_gt;  miss = (n_gt - n_match) / n_gt;  false_alarm = (n_pred - n_match) / n_pred (0 if none)
    completeness = 1 - (miss + false_alarm) / 2
    accuracy = count_penalty ** |n_pred - n_gt| * ((1 - c) * mean_iou + c * completeness)

and, for an empty ground truth, 1 when nothing is predicted else 0. ``t`` follows the schedule in
:mod:`orsta_trl.verifiers.schedule` (0.85 -> 0.95 -> 0.99) unless a fixed number or ``"average"`` (the mean of
the accuracies at 0.50, 0.55, ..., 0.95 and 0.99) is asked for; ``Context.iou_override`` beats both. Format is
1 when the answer parses into at least one valid box or is an explicit ``[]`` (parsing: :mod:`.boxes`).

Where we deviate from (or go beyond) the paper:

* Matching is pluggable. ``hungarian`` (default) maximises the total IoU over the pairs allowed at ``t``; the
  paper's two greedy matchers are kept as ``greedy_label_first`` (each ground-truth box in order takes the free
  prediction with the highest IoU) and ``greedy_iou_first`` (all pairs by IoU, descending, ties in prediction
  then ground-truth order). All three agree whenever no box has two candidates. Only same-label pairs with IoU
  at or above the lowest threshold in use are ever formed, found without the dense IoU matrix in crowded scenes,
  and matching runs only on the components where some box has two candidates (:mod:`.box_match`).
* Ground truth is in the original image's pixels; predictions are mapped there (``pred_coords``: Qwen2.5-VL's
  resized-input pixels via ``qwen_vl_utils.smart_resize`` with the processor's min/max pixels, a 0-1000 grid, or
  original pixels) and are not clipped to the image.
* Invalid boxes are dropped (reason ``invalid_boxes``) rather than failing the whole answer; they do not count as
  predictions. A box without a string label gets label ``""`` and matches nothing while ``match_labels``.
* Extra parts (diagnostics, not rewards): ``precision@t`` / ``recall@t`` at t = 0.5, 0.75, 0.95, 0.99 with the
  record's matcher (precision with no prediction = 1 when there is no ground truth else 0; recall with no
  ground truth = 1 when nothing is predicted else 0), and the sample's COCO ``ap``, ``ap50``, ``ap75``.
* AP is what pycocotools' ``COCOeval`` reports for the one image with every prediction scored 1.0 (see
  :func:`orsta_trl.verifiers.box_match.sample_ap`), except 1.0 / 0.0 (nothing / something predicted) where COCO
  says -1 for want of ground truth.
* Scores are zeros with a reason (never an exception) for ``no_answer``, ``unparsable_boxes`` and
  ``no_image_size`` (missing, non-positive or unresizable image size when ``pred_coords`` needs it; the format
  score still counts there). Label-first ties go to the earlier prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_choice, check_number
from orsta_trl.verifiers.box_match import COCO_LOW, coco_ap, match_counts, overlap_pairs, sample_ap
from orsta_trl.verifiers.boxes import (
    areas,
    as_box,
    box_problem,
    coords_array,
    iou,
    iou_matrix,
    label_categories,
    parse_boxes,
    resized_scale,
)
from orsta_trl.verifiers.schedule import iou_threshold_at

MATCHINGS = ("hungarian", "greedy_label_first", "greedy_iou_first")
PRED_COORDS = ("resized", "original", "norm1000")
AVERAGE_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10)) + (0.99,)
PR_THRESHOLDS = (0.5, 0.75, 0.95, 0.99)
_PR = tuple(f"{kind}@{t}" for t in PR_THRESHOLDS for kind in ("precision", "recall"))
PARTS = (*_PR, "ap", "ap50", "ap75")


def _accuracy(n: np.ndarray, s: np.ndarray, n_pred: int, n_gt: int, c: float, penalty: float) -> np.ndarray:
    if n_gt == 0:
        return np.full(len(n), 1.0 if n_pred == 0 else 0.0)
    false_alarm = (n_pred - n) / n_pred if n_pred else 0.0
    completeness = 1.0 - ((n_gt - n) / n_gt + false_alarm) / 2.0
    return penalty ** abs(n_pred - n_gt) * ((1.0 - c) * s / n_gt + c * completeness)


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
    p_cat, g_cat = label_categories([b[4] for b in pred_boxes], [b[4] for b in gt_boxes], match_labels)
    pairs = overlap_pairs(coords_array(pred_boxes), coords_array(gt_boxes), p_cat, g_cat, threshold)
    n, s = match_counts(pairs, [threshold], matching)
    return float(_accuracy(n, s, len(pred_boxes), len(gt_boxes), completeness_weight, count_penalty)[0])


def frame_scale(
    pred_coords: str, image_size: tuple[int, int] | None, min_pixels: int, max_pixels: int
) -> tuple[float, float] | None:
    """Factors (x, y) from a prediction's frame to the original image's pixels; None when the size is unusable.

    Args:
        pred_coords: the record's frame: ``"resized"`` (Qwen2.5-VL's model input), ``"norm1000"`` or
            ``"original"``.
        image_size: the original image's (width, height); not needed for ``"original"``.
        min_pixels, max_pixels: the processor's pixel bounds (the resized frame).

    Returns:
        ``(sx, sy)``: multiply x by ``sx`` and y by ``sy``; None without a usable size.

    >>> frame_scale("norm1000", (200, 100), 3136, 50176)
    (0.2, 0.1)
    """
    if pred_coords == "original":
        return 1.0, 1.0
    if not image_size:
        return None
    try:
        width, height = image_size
        if not (width > 0 and height > 0):
            return None
        if pred_coords == "norm1000":
            return width / 1000.0, height / 1000.0
        return resized_scale(int(width), int(height), int(min_pixels), int(max_pixels))
    except Exception:
        return None


def _scale(pred_coords: str, ctx: Context) -> tuple[float, float] | None:
    """Factors from the prediction's frame to the original image's pixels; None when the size is unusable."""
    size = ctx.image_sizes[0] if ctx.image_sizes else None
    return frame_scale(pred_coords, size, ctx.settings.min_pixels, ctx.settings.max_pixels)


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
            raise FieldError(
                "reward.params.match_labels", f"must be true or false, got {self.match_labels!r}"
            )
        _check_threshold("reward.params.iou_threshold", self.iou_threshold, ("dynamic", "average"))
        check_number("reward.params.completeness_weight", self.completeness_weight, 0.0, 1.0)
        check_number("reward.params.count_penalty", self.count_penalty, 0.0, 1.0)


@dataclass(frozen=True, eq=False)  # eq=False: hashable by identity despite the array
class DetectionGold:
    """Prepared ground truth: (n, 4) boxes in original pixels, and their labels."""

    boxes: np.ndarray
    labels: tuple[str, ...]


class DetectionVerifier(Verifier):
    name = "detection"
    answer_policy = "answer_tag_open"
    Params = DetectionParams
    parts = PARTS
    needs_image_size = True

    def prepare(self, ground_truth: Any, params: DetectionParams) -> DetectionGold:
        if not isinstance(ground_truth, list | tuple):
            raise FieldError(
                "reward.ground_truth", f"must be a list of boxes, got {type(ground_truth).__name__}"
            )
        for i, item in enumerate(ground_truth):
            problem = box_problem(item)
            if problem is None and not isinstance(item.get("label"), str):
                problem = f"'label' must be a string, got {item.get('label')!r}"
            if problem is not None:
                raise FieldError("reward.ground_truth", f"box {i} {problem}: {item!r}"[:300])
        boxes = [as_box(item) for item in ground_truth]
        for i, box in enumerate(boxes):
            if min(box[:4]) < 0:
                raise FieldError("reward.ground_truth", f"box {i} has negative coordinates: {list(box[:4])}")
        return DetectionGold(coords_array(boxes), tuple(b[4] for b in boxes))

    def check_images(self, gold: DetectionGold, params: DetectionParams, image_sizes) -> None:
        """Ground truth is in original pixels: a box that starts outside the first image cannot be right."""
        if not image_sizes:
            return
        width, height = image_sizes[0]
        for i, (x1, y1, _, _) in enumerate(gold.boxes.tolist()):
            if x1 >= width or y1 >= height:
                raise FieldError(
                    "reward.ground_truth",
                    f"box {i} {gold.boxes[i].tolist()} lies outside its {width}x{height} image "
                    "(ground-truth boxes are in original pixels)",
                )

    def score(self, text: str, gold: DetectionGold, params: DetectionParams, ctx: Context) -> Verdict:
        zeros = dict.fromkeys(PARTS, 0.0)
        found = predicted_boxes(text, params, ctx)
        if isinstance(found, str):
            return Verdict(0.0, 1.0 if found == "no_image_size" else 0.0, zeros, found)
        pred, area, labels, n_invalid = found
        thresholds = _thresholds(params, ctx)
        k = len(thresholds)
        p_cat, g_cat = label_categories(labels, gold.labels, params.match_labels)
        pairs = overlap_pairs(pred, gold.boxes, p_cat, g_cat, min(*thresholds, COCO_LOW))
        n_pred, n_gt = len(pred), len(gold.labels)
        n, s = match_counts(pairs, thresholds + PR_THRESHOLDS, params.matching)
        acc = _accuracy(n[:k], s[:k], n_pred, n_gt, params.completeness_weight, params.count_penalty)
        parts: dict[str, float] = {}
        for t, matched in zip(PR_THRESHOLDS, n[k:].tolist(), strict=True):
            parts[f"precision@{t}"] = matched / n_pred if n_pred else float(n_gt == 0)
            parts[f"recall@{t}"] = matched / n_gt if n_gt else float(n_pred == 0)
        parts["ap"], parts["ap50"], parts["ap75"] = coco_ap(pairs, p_cat, g_cat, area, areas(gold.boxes))
        reason = "invalid_boxes" if n_invalid else None
        return Verdict(float(acc.sum()) / k, 1.0, parts, reason)


def predicted_boxes(text: str, params: DetectionParams, ctx: Context):
    """The completion's valid boxes in original pixels: (coords (n, 4), areas, labels, n_invalid), or a reason.

    Shared by :meth:`DetectionVerifier.score` and dataset-level COCO mAP in evaluation.
    """
    parsed = parse_boxes(text)
    if not parsed.found:
        return "no_answer"
    if not parsed.boxes and not parsed.explicit_empty:
        return "unparsable_boxes"
    scale = _scale(params.pred_coords, ctx)
    if scale is None:
        return "no_image_size"
    with np.errstate(over="ignore", invalid="ignore"):
        pred = coords_array(parsed.boxes) * np.array([scale[0], scale[1], scale[0], scale[1]])
        area = areas(pred)
        ok = (area > 0) & (area < np.inf) & (pred[:, 2] > pred[:, 0]) & (pred[:, 3] > pred[:, 1])
    if not ok.all():  # degenerate or overflowing once rescaled
        pred, area = pred[ok], area[ok]
    labels = [b[4] for b, good in zip(parsed.boxes, ok.tolist(), strict=True) if good]
    return pred, area, labels, parsed.n_invalid + int(len(ok) - ok.sum())


def _thresholds(params: DetectionParams, ctx: Context) -> tuple[float, ...]:
    """The accuracy's IoU threshold(s): the context's override, else the record's setting."""
    setting = params.iou_threshold if ctx.iou_override is None else ctx.iou_override
    if setting == "average":
        return AVERAGE_THRESHOLDS
    if setting == "dynamic":
        return (iou_threshold_at(ctx.progress, ctx.settings.iou_schedule),)
    if isinstance(setting, bool) or not isinstance(setting, int | float) or not 0 < setting <= 1:
        raise ValueError(f"iou_override must be a number in (0, 1] or 'average', got {setting!r}")
    return (float(setting),)


__all__ = [
    "DetectionVerifier",
    "DetectionParams",
    "DetectionGold",
    "detection_score",
    "predicted_boxes",
    "iou",
    "iou_matrix",
    "sample_ap",
    "AVERAGE_THRESHOLDS",
    "PR_THRESHOLDS",
    "PARTS",
    "MATCHINGS",
    "PRED_COORDS",
]
