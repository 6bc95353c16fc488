"""Matching boxes: the pairs worth matching, V-Triune's matchers, and one image's COCO AP, in time that scales.

Every threshold used (V-Triune's accuracy threshold, precision/recall at 0.5+, COCO's 0.50:0.95) is > 0, so
only same-category pairs with IoU >= the lowest threshold ``t_min`` can ever match. :func:`overlap_pairs` finds
them without the dense N x M IoU matrix once N x M is large: IoU >= t implies that the boxes' centres lie
within ``(1 - t) * max(w_a, w_b)`` of each other in x (the overlap ``iw`` is at least ``t * max(w_a, w_b)`` and
at most ``(w_a + w_b) / 2 - |dx|``) and likewise in y, so a k-d tree over width/height-normalised centres
returns a superset, whose IoUs are then computed exactly as the dense matrix would (pycocotools' arithmetic).

Matching is then decided per connected component of the candidate graph at each threshold: a component of one
pair is a match under every matcher; only components with a box that has two candidates go through the
matcher (a small dense block) or COCO's greedy loop. Components are independent, so this equals matching the
whole matrix (for Hungarian up to the choice among equally good assignments, as before).

**AP.** :func:`sample_ap` is what pycocotools' ``COCOeval`` (bbox, area 'all', maxDets 100) reports for one
image when every prediction is scored 1.0 (so ties keep prediction order, as COCO's stable sort does): each
normalised label is a category (or all boxes one category without label matching) and the mean runs over
categories with ground truth, as ``stats[0:3]``. Where COCO reports -1 (no countable ground truth) we report
1.0 when nothing is predicted, else 0.0. It is numpy, not pycocotools, so that it costs tens of microseconds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from orsta_trl.verifiers.boxes import areas, coords_array, iou_matrix, label_categories

#: above this many prediction x ground-truth pairs, candidates come from a k-d tree instead of the dense matrix
DENSE_MAX = 4096

# pycocotools' constants, built exactly as COCOeval's Params builds them.
_COCO_IOU = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_COCO_REC = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_COCO_MATCH = np.minimum(_COCO_IOU, 1 - 1e-10)
_I50, _I75 = int(np.flatnonzero(_COCO_IOU == 0.5)[0]), int(np.flatnonzero(_COCO_IOU == 0.75)[0])
_AREA_MAX = 1e5**2  # COCO's areaRng 'all' is [0, 1e5 ** 2]
_MAX_DETS = 100
COCO_LOW = float(_COCO_MATCH[0])


@dataclass(frozen=True)
class Pairs:
    """Same-category (prediction, ground truth) pairs with IoU >= ``t_min`` (and > 0), in row-major order."""

    rows: np.ndarray
    cols: np.ndarray
    ious: np.ndarray
    shape: tuple[int, int]
    t_min: float
    root: Pairs | None = field(default=None, compare=False, repr=False)  # the pairs this subset came from

    def at(self, t: float) -> Pairs:
        """The pairs with IoU >= ``t`` (``t`` >= ``t_min``)."""
        keep = self.ious >= t
        return Pairs(self.rows[keep], self.cols[keep], self.ious[keep], self.shape, t, self.root or self)

    @functools.cached_property
    def row_components(self) -> np.ndarray:
        """Connected component of each prediction in this candidate graph (one component when small).

        Components at ``t_min`` are unions of those at any higher threshold, so matching whole ``t_min``
        components is still exact at every threshold.
        """
        n, m = self.shape
        if n * m <= DENSE_MAX:  # small: one block, as the dense code matched it
            return np.zeros(n, dtype=np.intp)
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(len(self.rows)), (self.rows, self.cols + n)), shape=(n + m, n + m))
        return connected_components(graph, directed=False)[1][:n]


def _pair_ious(p: np.ndarray, g: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """IoUs of the pairs (p[rows], g[cols]) with exactly :func:`~orsta_trl.verifiers.boxes.iou_matrix`'s arithmetic."""
    a, b = p[rows], g[cols]
    ax, ay, aw, ah = a[:, 0], a[:, 1], a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    bx, by, bw, bh = b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    iw = np.minimum(aw + ax, bw + bx) - np.maximum(ax, bx)
    ih = np.minimum(ah + ay, bh + by) - np.maximum(ay, by)
    overlap = (iw > 0) & (ih > 0)
    inter = np.where(overlap, iw * ih, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = inter / (aw * ah + bw * bh - inter)
    return np.where(overlap, out, 0.0)


def _near_pairs(p: np.ndarray, g: np.ndarray, t_min: float) -> tuple[np.ndarray, np.ndarray] | None:
    """A superset of the pairs with IoU >= ``t_min``, from a k-d tree; None where it would not prune."""
    from scipy.spatial import cKDTree

    both = np.concatenate([p, g])
    width, height = float((both[:, 2] - both[:, 0]).max()), float((both[:, 3] - both[:, 1]).max())
    with np.errstate(all="ignore"):
        scale = np.array([width, height])
        centres = (both[:, :2] + both[:, 2:]) / 2 / scale
        # float rounding in COCO's IoU arithmetic is relative to the coordinates' magnitude: widen for it
        slack = 1e-9 + 1e-12 * float(np.abs(both).max()) / min(width, height)
    radius = (1.0 - t_min) + slack
    if not (np.isfinite(centres).all() and np.isfinite(radius)) or radius >= 1.0:
        return None
    found = cKDTree(centres[: len(p)]).sparse_distance_matrix(
        cKDTree(centres[len(p) :]), radius, p=np.inf, output_type="ndarray"
    )
    order = np.lexsort((found["j"], found["i"]))
    return found["i"][order].astype(np.intp), found["j"][order].astype(np.intp)


def overlap_pairs(p, g, p_cat: np.ndarray, g_cat: np.ndarray, t_min: float) -> Pairs:
    """The same-category pairs of ``p`` (N x 4) and ``g`` (M x 4) boxes with IoU >= ``t_min`` (> 0).

    Args:
        p, g: [x1, y1, x2, y2] boxes (arrays or sequences).
        p_cat, g_cat: integer categories (see :func:`~orsta_trl.verifiers.boxes.label_categories`).
        t_min: the lowest threshold that will be asked of the pairs (in (0, 1]).

    Returns:
        :class:`Pairs`, row-major, with IoUs equal to the dense matrix's entries.
    """
    p, g = coords_array(p), coords_array(g)
    n, m = len(p), len(g)
    near = _near_pairs(p, g, t_min) if n * m > DENSE_MAX else None
    if near is None:
        dense = iou_matrix(p, g)
        rows, cols = np.nonzero(dense > 0)
        ious = dense[rows, cols]
    else:
        rows, cols = near
        ious = _pair_ious(p, g, rows, cols)
    keep = (ious >= t_min) & (ious > 0) & (p_cat[rows] == g_cat[cols])
    return Pairs(rows[keep], cols[keep], ious[keep], (n, m), t_min)


def _conflicted(pairs: Pairs) -> np.ndarray:
    """Mask of the pairs in components (of the root candidate graph) where some box has two candidates."""
    n, m = pairs.shape
    busy = (np.bincount(pairs.rows, minlength=n)[pairs.rows] > 1) | (
        np.bincount(pairs.cols, minlength=m)[pairs.cols] > 1
    )
    if not busy.any():
        return busy
    label = (pairs.root or pairs).row_components
    bad = np.zeros(label.max() + 1, dtype=bool)
    bad[label[pairs.rows[busy]]] = True
    return bad[label[pairs.rows]]


def _block(pairs: Pairs, mask: np.ndarray) -> np.ndarray:
    """The dense IoU matrix of the masked pairs over their own rows and columns (both kept in order)."""
    rows, cols = pairs.rows[mask], pairs.cols[mask]
    ur, uc = np.unique(rows), np.unique(cols)
    w = np.zeros((len(ur), len(uc)))
    w[np.searchsorted(ur, rows), np.searchsorted(uc, cols)] = pairs.ious[mask]
    return w


def match_one(w: np.ndarray, matching: str) -> tuple[int, float]:
    """Matches and their IoU sum on the dense ``w`` (pairs not allowed are 0), with the named matcher."""
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


def match_counts(pairs: Pairs, thresholds, matching: str) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold (each >= ``pairs.t_min``): the number of matches and the sum of their IoUs."""
    ts = np.asarray(thresholds, dtype=float)
    if not _conflicted(pairs).any():  # no box has two candidates at t_min, so at no threshold: all match
        hit = pairs.ious[None, :] >= ts[:, None]
        return hit.sum(axis=1).astype(float), np.where(hit, pairs.ious[None, :], 0.0).sum(axis=1)
    n, s = np.zeros(len(ts)), np.zeros(len(ts))
    done: dict[float, tuple[float, float]] = {}
    for k, t in enumerate(ts.tolist()):
        if t not in done:
            at = pairs.at(t)
            bad = _conflicted(at)
            free = ~bad
            count, total = float(free.sum()), float(at.ious[free].sum())
            if bad.any():
                extra = match_one(_block(at, bad), matching)
                count, total = count + extra[0], total + extra[1]
            done[t] = (count, total)
        n[k], s[k] = done[t]
    return n, s


def _coco_matches(pairs: Pairs, g_ig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching at the 10 IoU thresholds: (dtMatches > 0, dtIgnore) as bool arrays.

    Detections are taken in order (all scores equal); each takes the free ground truth with the highest IoU
    >= t (the last one on ties), preferring ground truth that is not ignored (``g_ig``).
    """
    dtm = np.zeros((len(_COCO_MATCH), pairs.shape[0]), dtype=bool)
    dt_ig = np.zeros_like(dtm)
    if not _conflicted(
        pairs
    ).any():  # no detection wants two ground truths nor two the same: IoU >= t decides
        dtm[:, pairs.rows] = pairs.ious[None, :] >= _COCO_MATCH[:, None]
        dt_ig[:, pairs.rows] = dtm[:, pairs.rows] & g_ig[pairs.cols][None, :]
        return dtm, dt_ig
    ignored = g_ig.tolist()
    for t, thr in enumerate(_COCO_MATCH.tolist()):
        at = pairs.at(thr)
        bad = _conflicted(at)
        free = ~bad
        dtm[t, at.rows[free]] = True
        dt_ig[t, at.rows[free]] = g_ig[at.cols[free]]
        if not bad.any():
            continue
        d, g, v = at.rows[bad], at.cols[bad], at.ious[bad]
        order = np.lexsort((-g, -v, g_ig[g], d))  # per detection: counted first, highest IoU, last index
        taken: set[int] = set()
        current, settled = -1, False
        for di, gi in zip(d[order].tolist(), g[order].tolist(), strict=True):
            if di != current:
                current, settled = di, False
            if not settled and gi not in taken:  # the first free candidate in order of preference
                taken.add(gi)
                dtm[t, di], dt_ig[t, di], settled = True, ignored[gi], True
    return dtm, dt_ig


def coco_ap(pairs: Pairs, p_cat, g_cat, p_area, g_area) -> tuple[float, float, float]:
    """pycocotools' evaluateImg + accumulate + summarize for one image with all detection scores equal.

    Args:
        pairs: the same-category pairs, from :func:`overlap_pairs` with ``t_min`` <= 0.5.
        p_cat, g_cat: integer categories of the predictions and the ground truth.
        p_area, g_area: their areas.

    Returns:
        (AP, AP50, AP75).
    """
    n_det = pairs.shape[0]
    g_ig = g_area > _AREA_MAX  # areas are >= 0: only the upper bound of 'all' can bite
    if g_ig.all():  # no countable ground truth: COCO says -1, we say whether anything was predicted
        value = 1.0 if n_det == 0 else 0.0
        return value, value, value
    if n_det == 0:
        return 0.0, 0.0, 0.0
    # maxDets: only the first 100 detections of each category count (later ones, matched after them, cannot
    # change their matches; ``keep`` drops them from the counts below)
    keep = np.ones(n_det, dtype=bool)
    if n_det > _MAX_DETS:
        order = np.argsort(p_cat, kind="stable")
        sorted_cat = p_cat[order]
        first = np.searchsorted(sorted_cat, sorted_cat, side="left")
        keep[order] = np.arange(n_det) - first < _MAX_DETS
    dtm, dt_ig = _coco_matches(pairs.at(COCO_LOW), g_ig)
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
    """The image's COCO (AP, AP50, AP75) for (x1, y1, x2, y2, label) boxes, every prediction scored 1.0.

    Args:
        pred_boxes, gt_boxes: sequences of (x1, y1, x2, y2, label).
        match_labels: each normalised label is its own category (else all boxes are one category).

    Returns:
        (AP, AP50, AP75) as pycocotools' ``COCOeval.stats[0:3]`` (1.0 / 0.0 where COCO says -1).
    """
    p, g = coords_array(pred_boxes), coords_array(gt_boxes)
    p_cat, g_cat = label_categories([b[4] for b in pred_boxes], [b[4] for b in gt_boxes], match_labels)
    return coco_ap(overlap_pairs(p, g, p_cat, g_cat, COCO_LOW), p_cat, g_cat, areas(p), areas(g))
