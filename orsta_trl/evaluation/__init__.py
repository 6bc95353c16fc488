"""Evaluation outside the training loop: one offline generate-and-score path and what reports on it.

* :mod:`~orsta_trl.evaluation.generate`: batched HF generation, greedy or sampled, and the tool loop;
* :mod:`~orsta_trl.evaluation.offline`: :func:`offline_session` (recipe → pooled records → model and processor →
  reward settings from the processor → router, tools) and its :class:`Scorer`, also handed to the trainer;
* :mod:`~orsta_trl.evaluation.report`: ``orsta-trl eval`` (:func:`evaluate_checkpoint`) and its table;
* :mod:`~orsta_trl.evaluation.coco`: dataset-level COCO mAP of detection sources.
"""

from orsta_trl.data.load import per_source_subset
from orsta_trl.evaluation.coco import coco_map
from orsta_trl.evaluation.generate import (
    Generated,
    generate,
    generation_settings,
    greedy_completions,
    tool_rollouts,
)
from orsta_trl.evaluation.offline import (
    OfflineSession,
    Scorer,
    load_for_eval,
    offline_session,
    score_generated,
)
from orsta_trl.evaluation.report import eval_metrics, eval_table, evaluate_checkpoint

__all__ = [
    "Generated",
    "OfflineSession",
    "Scorer",
    "coco_map",
    "eval_metrics",
    "eval_table",
    "evaluate_checkpoint",
    "generate",
    "generation_settings",
    "greedy_completions",
    "load_for_eval",
    "offline_session",
    "per_source_subset",
    "score_generated",
    "tool_rollouts",
]
