"""Decoupled evaluation: greedy decoding (one completion per prompt), the same verifiers, a fixed IoU setting.

Training rewards follow the dynamic IoU schedule; evaluation never does: detection is scored with
``eval_iou_threshold`` (default ``"average"``: the mean over 0.50:0.05:0.95 and 0.99) so numbers from different
training steps compare. Metrics are the monitor's per-source set, as rows of split ``eval``
(``eval/source/<data_source>/<metric>`` once written). For
detection sources the report adds dataset-level COCO mAP / AP50 / AP75 computed by pycocotools with every
predicted box scored 1.0, as the paper does.

Used during training (before the first step and every ``eval_steps``) and by ``orsta-trl eval``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from orsta_trl.console import source_table
from orsta_trl.data.records import Record
from orsta_trl.data.rows import prompt_messages
from orsta_trl.models.tokens import placeholder_ids, stop_ids, trim_at_stop
from orsta_trl.monitor.source_metrics import DEFAULT_REFLECTION_WORDS, MetricRow, compute_metrics, finalize
from orsta_trl.monitor.writing import by_source, tags
from orsta_trl.rewards.router import RewardRouter
from orsta_trl.rewards.sample import Sample


@dataclass
class Generated:
    text: str
    length: int
    truncated: bool


def _load_images(record: Record):
    from PIL import Image

    images = []
    for image in record.images:
        if isinstance(image, str):
            with Image.open(image) as opened:
                images.append(opened.convert("RGB"))
        else:
            images.append(image.convert("RGB"))
    return images


@torch.no_grad()
def greedy_completions(
    model,
    processing_class,
    records: list[Record],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    show_progress: bool = False,
    num_samples: int = 1,
    temperature: float | None = None,
) -> list[Generated]:
    """One greedy completion per record (left-padded batches, placeholder tokens suppressed).

    With ``temperature`` set, ``num_samples`` sampled completions per record instead, consecutive in the
    result (the difficulty filter's pass@k); seed torch before the call for repeatable samples.
    """
    from tqdm.auto import tqdm

    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    vision = tokenizer is not processing_class
    stops = stop_ids(tokenizer, model.generation_config.eos_token_id or None)
    suppress = placeholder_ids(tokenizer)
    was_training = model.training
    model.eval()
    out: list[Generated] = []
    batches = range(0, len(records), batch_size)
    for start in tqdm(batches, desc="evaluating", disable=not show_progress):
        batch = records[start : start + batch_size]
        conversations = []
        for record in batch:
            messages = prompt_messages(record, vision=vision)
            if vision and record.images:
                images = iter(_load_images(record))
                messages = [
                    {
                        **m,
                        "content": [
                            ({"type": "image", "image": next(images)} if p["type"] == "image" else p)
                            for p in m["content"]
                        ],
                    }
                    for m in messages
                ]
            conversations.append(messages)
        call = {"padding": True, "return_tensors": "pt"}
        kwargs = {"processor_kwargs": call} if vision else call
        inputs = processing_class.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True, **kwargs
        ).to(model.device)
        sampling = {"do_sample": False, "temperature": None}
        if temperature is not None:
            sampling = {"do_sample": True, "temperature": temperature, "num_return_sequences": num_samples}
        generated = model.generate(
            **inputs,
            **sampling,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            suppress_tokens=suppress or None,
            top_p=None,
            top_k=None,
        )
        completion_ids = generated[:, inputs["input_ids"].shape[1] :].tolist()
        for ids in completion_ids:
            kept, truncated = trim_at_stop(ids, stops)
            out.append(Generated(tokenizer.decode(kept, skip_special_tokens=True), len(kept), truncated))
    model.train(was_training)
    return out


def score_generated(
    router: RewardRouter, records: list[Record], generated: list[Generated], iou_override="average"
) -> list[Sample]:
    """Score greedy completions against their records with the fixed IoU setting; one sample per record."""
    samples = router.score(records, [g.text for g in generated], 1.0, iou_override=iou_override)
    return [
        s.with_generation(g.length, g.truncated, group=(s.data_source, s.id))
        for s, g in zip(samples, generated, strict=True)
    ]


def eval_metrics(
    rows: list[Sample], correct_threshold: float = 1.0, reflection_words=DEFAULT_REFLECTION_WORDS
) -> list[MetricRow]:
    """The per-source metric rows (split ``eval``) over all samples (gathered from every rank).

    ``groups/zero_spread`` is left out: with one greedy completion per prompt every group is trivially flat.
    """
    metrics = finalize(compute_metrics(rows, correct_threshold, reflection_words), split="eval")
    return [row for row in metrics if row.metric != "groups/zero_spread"]


def per_source_subset(records: list[Record], limit: int) -> list[Record]:
    """At most ``limit`` records of each data_source, in file order (0: all)."""
    if not limit:
        return list(records)
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for record in records:
        if seen[record.data_source] < limit:
            seen[record.data_source] += 1
            kept.append(record)
    return kept


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
            for box, label in zip(gold.boxes.tolist(), gold.labels, strict=True):
                cat = categories.setdefault(label.strip().lower(), len(categories) + 1)
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
                cat = categories.get(str(label).strip().lower())
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


def load_for_eval(checkpoint: str, *, pixel_bounds: tuple[int, int] | None = None, dtype: str = "auto"):
    """A saved model (full, or a LoRA adapter on its base) and its processor, on the GPU when there is one.

    ``pixel_bounds`` (min, max) replace the processor's own only when given (``--recipe``): by default the
    checkpoint's saved processor config is the source of truth, as in training.
    """
    import torch

    from orsta_trl.models.loading import is_vision_model, load_model, load_processor

    path = Path(checkpoint)
    adapter = path / "adapter_config.json"
    base = json.loads(adapter.read_text())["base_model_name_or_path"] if adapter.exists() else str(path)
    vision = is_vision_model(base)
    processor_source = str(path) if (path / "tokenizer_config.json").exists() else base
    low, high = pixel_bounds or (None, None)
    processor = load_processor(processor_source, min_pixels=low, max_pixels=high, vision=vision)
    model = load_model(base, vision=vision, dtype=dtype)
    if adapter.exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path))
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, processor


def evaluate_checkpoint(
    checkpoint: str,
    data: list[str],
    *,
    output: str | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    iou_threshold="average",
    recipe_path: str | None = None,
) -> dict:
    """Greedy completions of a saved model (full, or a LoRA adapter) on held-out records, scored per source.

    Args:
        checkpoint: the model folder (``output_dir`` of a run).
        data: dataset files, or records in memory (see :func:`orsta_trl.data.records.load_records`).
        output: also write the report as JSON here.
        max_new_tokens, batch_size: generation settings.
        iou_threshold: the fixed IoU setting of detection (a number or ``"average"``).
        recipe_path: take pixel bounds and reward settings from this recipe (else the checkpoint's processor).

    Returns:
        The report: ``metrics`` (``{"eval/source/<data_source>/<metric>": value}``), ``per_source``
        (``{data_source: {metric: value}}``), ``coco`` (mAP per detection source), ``completions`` and the
        settings used. ``orsta-trl eval`` prints it as a table.
    """
    import dataclasses

    from orsta_trl.data.prompt_pool import pooled
    from orsta_trl.data.records import load_records
    from orsta_trl.recipe import orsta_config_from

    orsta = orsta_config_from(recipe_path)
    records = pooled(load_records(data), orsta)  # the prompts training saw (issue 10)
    bounds = (orsta.min_pixels, orsta.max_pixels) if recipe_path else None
    model, processor = load_for_eval(checkpoint, pixel_bounds=bounds)
    settings = orsta.reward_settings()
    size = getattr(getattr(processor, "image_processor", None), "size", None)
    if size is not None:  # box rescaling must use the bounds the processor resizes with
        settings = dataclasses.replace(
            settings, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"]
        )
    router = RewardRouter(records, settings)
    try:
        router.start()
        generated = greedy_completions(
            model,
            processor,
            records,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            show_progress=True,
        )
        rows = score_generated(router, records, generated, iou_override=iou_threshold)
    finally:
        router.close()
    metrics = eval_metrics(rows)
    report = {
        "checkpoint": str(checkpoint),
        "data": [str(d) for d in data],
        "iou_threshold": iou_threshold,
        "pixel_bounds": [settings.min_pixels, settings.max_pixels],
        "metrics": tags(metrics),
        "per_source": by_source(metrics),
        "coco": coco_map(records, rows, router),
        "completions": [
            {
                "id": r.id,
                "data_source": r.data_source,
                "completion": r.text,
                "reward": r.reward,
                "accuracy": r.accuracy,
                "reason": r.reason,
            }
            for r in rows
        ],
    }
    if output:
        Path(output).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def eval_table(report: dict) -> str:
    """Per-source table of an evaluation report."""
    table = {
        source: {**metrics, **report["coco"].get(source, {})}
        for source, metrics in report["per_source"].items()
    }
    columns = [
        ("reward", "reward", "7.3f"),
        ("accuracy", "accuracy", "9.3f"),
        ("format", "format", "7.3f"),
        ("length", "length/mean", "7.1f"),
        ("trunc", "truncated/ratio", "6.2f"),
        ("mAP", "map", "6.3f"),
        ("AP50", "map50", "6.3f"),
    ]
    return source_table(table, columns)
