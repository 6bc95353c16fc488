"""Dataset-level COCO mAP / AP50 / AP75 of detection sources, computed by pycocotools with every predicted box
scored 1.0, as the paper does (the verifier's own per-completion score is the reward, not this)."""

from __future__ import annotations

from collections import defaultdict

from orsta_trl.data.records import Record
from orsta_trl.rewards.router import RewardRouter
from orsta_trl.rewards.sample import Sample


def coco_map(records: list[Record], rows: list[Sample], router: RewardRouter) -> dict[str, dict[str, float]]:
    """Dataset-level COCO mAP / AP50 / AP75 per detection source (pycocotools; every box scored 1.0)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from orsta_trl.verifiers.detection import predicted_boxes

    per_source: dict[str, list[tuple[Record, Sample]]] = defaultdict(list)
    for record, row in zip(records, rows, strict=True):
        if record.reward.verifier.name == "detection":
            per_source[record.data_source].append((record, row))
    results = {}
    for source, pairs in per_source.items():
        categories: dict[str, int] = {}
        images, annotations, detections = [], [], []
        for image_id, (record, row) in enumerate(pairs, start=1):
            width, height = record.image_sizes[0] if record.image_sizes else (0, 0)
            images.append({"id": image_id, "width": width, "height": height})
            gold = record.reward.gold
            labelled = record.reward.params.match_labels  # false: one category, as the verifier matches
            for box, label in zip(gold.boxes.tolist(), gold.labels, strict=True):
                cat = categories.setdefault(label.strip().lower() if labelled else "", len(categories) + 1)
                w, h = box[2] - box[0], box[3] - box[1]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": cat,
                        "bbox": [box[0], box[1], w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
            found = predicted_boxes(row.text, record.reward.params, router.context(record, 1.0))
            if isinstance(found, str):
                continue
            coords, _, labels, _ = found
            for box, label in zip(coords.tolist(), labels, strict=True):
                cat = categories.get(str(label).strip().lower() if labelled else "")
                if cat is not None:
                    detections.append(
                        {
                            "image_id": image_id,
                            "category_id": cat,
                            "score": 1.0,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                        }
                    )
        if not annotations:
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": i, "name": n} for n, i in categories.items()],
            }
            gt.createIndex()
            if detections:
                dt = gt.loadRes(detections)
                evaluator = COCOeval(gt, dt, "bbox")
                evaluator.evaluate()
                evaluator.accumulate()
                evaluator.summarize()
                stats = evaluator.stats
                results[source] = {
                    "map": max(0.0, stats[0]),
                    "map50": max(0.0, stats[1]),
                    "map75": max(0.0, stats[2]),
                }
            else:
                results[source] = {"map": 0.0, "map50": 0.0, "map75": 0.0}
    return results
