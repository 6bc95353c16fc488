"""``orsta-trl eval``: greedy decoding (one completion per prompt), the same verifiers, a fixed IoU setting.

Training rewards follow the dynamic IoU schedule; evaluation never does: detection is scored with
``eval_iou_threshold`` (default ``"average"``: the mean over 0.50:0.05:0.95 and 0.99) so numbers from different
training steps compare. Metrics are the monitor's per-source set, as rows of split ``eval``
(``eval/source/<data_source>/<metric>`` once written). For detection sources the report adds dataset-level
COCO mAP / AP50 / AP75 (:mod:`orsta_trl.evaluation.coco`). A recipe with tools is evaluated with its tools.
"""

from __future__ import annotations

import json
from pathlib import Path

from orsta_trl.console import source_table
from orsta_trl.evaluation.coco import coco_map
from orsta_trl.evaluation.generate import generation_settings
from orsta_trl.evaluation.offline import offline_session
from orsta_trl.monitor.source_metrics import eval_metrics
from orsta_trl.monitor.writing import by_source, tags


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
    from orsta_trl.data.records import load_records
    from orsta_trl.recipe import orsta_config_from

    orsta_config_from(recipe_path)  # the recipe's own verifiers join the registry before its records load
    with offline_session(checkpoint, load_records(data), recipe_path) as session:
        records, settings = session.records, session.settings
        rows = session.scorer(
            session.model, session.processor, records, max_new_tokens=max_new_tokens, batch_size=batch_size,
            iou=iou_threshold, show_progress=True,
        )  # fmt: skip
        coco = coco_map(records, rows, session.scorer.router)
        generation = generation_settings(
            session.model, session.processor, max_new_tokens, batch_size, session.scorer.toolset
        )
    metrics = eval_metrics(rows)
    report = {
        "checkpoint": str(checkpoint),
        "data": [str(d) for d in data],
        "iou_threshold": iou_threshold,
        "pixel_bounds": [settings.min_pixels, settings.max_pixels],
        "generation": generation,
        "metrics": tags(metrics),
        "per_source": by_source(metrics),
        "coco": coco,
        "completions": [
            {
                "id": r.id,
                "data_source": r.data_source,
                "completion": r.text,
                "reward": r.reward,
                "accuracy": r.accuracy,
                "reason": r.reason,
                **({"tools": r.tools} if r.tools is not None else {}),
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
