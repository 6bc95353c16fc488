"""The dense detection matching and COCO AP as they were before the vectorised matcher (commit 7e1cc63), kept as an oracle.

The sparse implementation (:mod:`orsta_trl.verifiers.box_match`) must give the same matches and AP; these take
the full (N, M) matrix of same-category IoUs (0 where not allowed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def allowed_ious(ious: np.ndarray, p_cat: np.ndarray, g_cat: np.ndarray) -> np.ndarray:
    """The IoUs of same-category pairs; 0 elsewhere."""
    return np.where(p_cat[:, None] == g_cat[None, :], ious, 0.0)


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


def _match_counts(
    allowed: np.ndarray, thresholds: Sequence[float], matching: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold: number of matches and the sum of their IoUs (``allowed``: IoUs, 0 where not allowed)."""
    unique = list(dict.fromkeys(thresholds))
    if len(unique) < len(thresholds):
        n, s = _match_counts(allowed, unique, matching)
        back = [unique.index(t) for t in thresholds]
        return n[back], s[back]
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
