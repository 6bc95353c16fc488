"""orsta-trl: V-Triune-style GRPO for Qwen2.5-VL on Hugging Face TRL.

The public Python API (for notebooks and scripts); everything imports lazily, so ``import orsta_trl`` is cheap::

    from orsta_trl import load_recipe, train, make_tiny_vl, synth, load_records, RewardRouter

    recipe = load_recipe("recipes/tiny_cpu.yaml", {"max_steps": 10})
    result = train(recipe)              # an OrstaRun: .trainer, .router, .dropped
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_recipe": "orsta_trl.recipe",
    "OrstaConfig": "orsta_trl.recipe",
    "train": ("orsta_trl.train", "run"),
    "load_records": "orsta_trl.data.records",
    "synth": "orsta_trl.data.synth",
    "make_tiny_vl": "orsta_trl.models.tiny",
    "make_tiny_lm": "orsta_trl.models.tiny",
    "RewardRouter": "orsta_trl.verifiers.router",
    "REGISTRY": "orsta_trl.verifiers.registry",
    "score_files": "orsta_trl.score",
    "evaluate_checkpoint": "orsta_trl.evaluation",
    "write_report": "orsta_trl.monitor.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'orsta_trl' has no attribute {name!r}")
    target = _EXPORTS[name]
    module, attribute = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module), attribute)
