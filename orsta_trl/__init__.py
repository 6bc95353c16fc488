"""orsta-trl: V-Triune-style GRPO for Qwen2.5-VL on Hugging Face TRL.

The public Python API, for notebooks and scripts. Everything imports lazily, so ``import orsta_trl`` is cheap::

    import orsta_trl

    orsta_trl.make_tiny_vl("demo/tiny-vl")                       # a tiny offline Qwen2.5-VL
    orsta_trl.synth("demo/data", n=16)                           # synthetic records and images
    recipe = orsta_trl.load_recipe("recipes/tiny_cpu.yaml", max_steps=10)
    trainer = orsta_trl.build_trainer(recipe)                    # inspect or change it before training
    result = orsta_trl.train(recipe)                             # .trainer, .metrics (DataFrame), .output_dir
    samples = orsta_trl.score(records, completions)              # records and completions as dicts or files
    report = orsta_trl.evaluate("demo/run", ["demo/eval/data.jsonl"])
    orsta_trl.register_verifier("exact", my_fn)                  # your own reward, named by records
    orsta_trl.view("demo/run", source="synth_shape")            # the run's completions, inline in Jupyter

Library functions raise :class:`OrstaError` subclasses (:class:`RecipeError`, :class:`DataError`,
:class:`NotReady`); only the command line turns them into exit codes.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_EXPORTS = {
    "load_recipe": "orsta_trl.recipe",
    "Recipe": "orsta_trl.recipe",
    "OrstaConfig": "orsta_trl.recipe",
    "build_trainer": "orsta_trl.api",
    "train": "orsta_trl.api",
    "TrainResult": "orsta_trl.api",
    "view": "orsta_trl.api",
    "score": "orsta_trl.score",
    "score_files": "orsta_trl.score",
    "evaluate": ("orsta_trl.evaluation", "evaluate_checkpoint"),
    "evaluate_checkpoint": "orsta_trl.evaluation",
    "load_records": "orsta_trl.data.records",
    "synth": "orsta_trl.data.synth",
    "make_tiny_vl": "orsta_trl.models.tiny",
    "make_tiny_lm": "orsta_trl.models.tiny",
    "RewardRouter": "orsta_trl.rewards",
    "RewardSettings": "orsta_trl.rewards",
    "Sample": "orsta_trl.rewards",
    "REGISTRY": "orsta_trl.verifiers.registry",
    "register_verifier": "orsta_trl.verifiers.registry",
    "write_report": "orsta_trl.monitor.report",
    "OrstaError": "orsta_trl.errors",
    "RecipeError": "orsta_trl.errors",
    "DataError": "orsta_trl.errors",
    "NotReady": "orsta_trl.errors",
    "sft_warmup": "orsta_trl.warmup",
    "merge_adapter": "orsta_trl.models.lora",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'orsta_trl' has no attribute {name!r}")
    target = _EXPORTS[name]
    module, attribute = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module), attribute)


class _Package(types.ModuleType):
    """Keeps exports from being shadowed by submodules of the same name.

    Importing ``orsta_trl.train`` (the entry script) would otherwise set the package attribute ``train`` to
    that module, and ``from orsta_trl import train`` would return the module instead of the function.
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return  # the import system binding a submodule: the export (resolved lazily) stays
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
