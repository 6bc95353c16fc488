"""V-Triune's detection reward as their reward server computes it: the cost model our benchmarks compare against.

Mirrors MiniMax-AI/One-RL-to-See-Them-All at commit 39bcf0d (MIT licence), ``reward_server/``:

* ``reward_serving_fastapi.py::judge_reward``: a fresh ``DetectionVerifier`` per request (its ``__init__`` reads
  ``DET_IOU_THRESHOLD`` and logs at INFO), then ``verify_format`` and ``verify_accuracy``;
* ``verify.py::DetectionVerifier.verify_accuracy``: ``extract_answer_content`` (regex) on the response and on the
  solution, ``extract_bbox`` on both (string rewrites, ``json.loads``, per-item checks, de-duplication), the size
  penalty, ``pack_for_iou_score`` (both greedy matchers at all 11 thresholds 0.5 ... 0.99, each call
  recomputing the IoU matrix in Python) and ``pack_for_map_score`` (a pycocotools ``COCO`` + ``COCOeval``
  evaluate/accumulate/summarize per request, which prints its summary), all of it whatever the weights;
* ``utils/det_helper.py``: ``compute_iou``, ``greedy_match_by_iou_max_iou_first`` (repeated scans of all
  unmatched pairs for the global maximum) and ``greedy_match_by_iou_max_label_first``.

They vendor pycocotools (``utils/pycocotools``); we call the released package, the same algorithm. Their logging
goes to a buffer here (their server writes it to stderr), and so does COCOeval's summary print. HTTP and JSON
transport are left out, which favours them. The returned number is their ``final_score``; only its cost is
compared (their conventions differ from ours, e.g. normalised 0-1000 boxes, ``[[``/``]]`` rewriting).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re

import numpy as np

_LOG = logging.getLogger("vtriune_model")
_LOG.propagate = False
_LOG.setLevel(logging.INFO)
_LOG.addHandler(logging.StreamHandler(io.StringIO()))
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99]
RATIO = {"iou_max_label_first": 1.0, "iou_max_iou_first": 0.0, "iou_completeness": 0.3, "map": 0.0}
RATIO |= {"map50": 0.0, "map75": 0.0}


def _answer(text: str) -> str:
    match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def _extract_bbox(s: str):
    if not s or not s.strip():
        return None
    s = s.replace("[[", "[").replace("]]", "]")
    if not s.endswith("]"):
        s = s.rsplit("},", 1)[0] + "}]"
    s = s.replace("'", '"').replace("\\", "")
    try:
        items = json.loads(s)
        if not isinstance(items, list):
            return None
        out, seen = [], set()
        for it in items:
            b = it.get("bbox_2d") if isinstance(it, dict) else None
            if (
                isinstance(b, list)
                and "label" in it
                and len(b) == 4
                and all(isinstance(c, int | float) for c in b)
                and b[0] <= b[2]
                and b[1] <= b[3]
                and isinstance(it["label"], str)
            ):
                if tuple(b) not in seen:
                    seen.add(tuple(b))
                    out.append(it)
        return out or None
    except Exception:
        return None


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if x2 <= x1 or y2 <= y1:
        return 0.0
    inter = (x2 - x1) * (y2 - y1)
    return float(inter) / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _iou_first(pred, gt, t):
    m = np.zeros((len(pred), len(gt)))
    for i in range(len(pred)):
        for j in range(len(gt)):
            m[i][j] = _iou(pred[i]["bbox_2d"], gt[j]["bbox_2d"])
    matches, up, ug = [], list(range(len(pred))), list(range(len(gt)))
    while up and ug:
        best, bi, bj = -1, -1, -1
        for i in up:
            for j in ug:
                if m[i][j] > best:
                    best, bi, bj = m[i][j], i, j
        if best < t:
            break
        same = pred[bi]["label"].lower() == gt[bj]["label"].lower()
        matches.append({"pred_idx": bi, "gt_idx": bj, "iou": best if same else 0.0})
        up.remove(bi)
        ug.remove(bj)
    return matches


def _label_first(pred, gt, t):
    matches, used = [], set()
    for j, g in enumerate(gt):
        cands, ious = [], []
        for i, p in enumerate(pred):
            if i not in used and p["label"].lower() == g["label"].lower():
                cands.append(i)
                ious.append(_iou(p["bbox_2d"], g["bbox_2d"]))
        if cands and np.max(ious) >= t:
            matches.append({"pred_idx": cands[int(np.argmax(ious))], "gt_idx": j, "iou": np.max(ious)})
            used.add(cands[int(np.argmax(ious))])
    return matches


def _iou_score(pred, gt, matcher, t, c):
    matches = matcher(pred, gt, t)
    mean_iou = sum(m["iou"] for m in matches) / len(gt) if matches else 0.0
    miss = (len(gt) - len(matches)) / len(gt)
    fa = 0.0 if not pred else (len(pred) - len(matches)) / len(pred)
    return {"weighted_iou_score": mean_iou * (1 - c) + (1 - (miss + fa) / 2) * c, "precision": 1 - fa}


def _map(pred, gt) -> tuple[float, float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats, anns = {}, []
    for k, g in enumerate(gt):
        cats.setdefault(g["label"], len(cats))
        x1, y1, x2, y2 = g["bbox_2d"]
        anns.append(
            {"id": k + 1, "image_id": 0, "category_id": cats[g["label"]], "bbox": [x1, y1, x2 - x1, y2 - y1]}
            | {"area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
        )
    dts = []
    for p in pred:
        if p["label"] in cats:
            x1, y1, x2, y2 = p["bbox_2d"]
            dts.append({"image_id": 0, "category_id": cats[p["label"]], "bbox": [x1, y1, x2 - x1, y2 - y1]})
            dts[-1] |= {"score": 1.0, "area": (x2 - x1) * (y2 - y1)}
    if not dts:
        return 0.0, 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {
            "annotations": anns,
            "images": [{"id": 0, "file_name": "fake_image_0.jpg"}],
            "categories": [{"id": i, "name": n} for n, i in cats.items()],
        }
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1]), float(ev.stats[2])


def vtriune_detection_reward(response: str, solution: str) -> float:
    """One request to V-Triune's reward server for a detection sample: a fresh verifier, format, accuracy."""
    _LOG.info("DET_IOU_THRESHOLD is set to average")  # __init__ of the per-request verifier
    ok = "\n<answer>\n" in response and response.count("\n</answer>") == 1
    _ = 1.0 if ok and _extract_bbox(_answer(response.strip()).lower()) else 0.0  # verify_format
    pred = _extract_bbox(_answer(response.strip()).lower())
    gt = _extract_bbox(_answer(solution.strip()).lower())
    if gt is None or not pred:
        return 0.0
    penalty = 0.6 ** abs(len(pred) - len(gt))
    c = RATIO["iou_completeness"]
    scores = {
        name: {t: _iou_score(pred, gt, matcher, t, c) for t in THRESHOLDS}
        for name, matcher in (("iou_first", _iou_first), ("label_first", _label_first))
    }
    _map(pred, gt)
    _LOG.info("det_reward_ratio: %s", RATIO)
    average = sum(scores["label_first"][t]["weighted_iou_score"] for t in THRESHOLDS) / len(THRESHOLDS)
    return average * penalty
