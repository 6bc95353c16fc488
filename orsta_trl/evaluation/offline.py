"""The one offline generate-and-score path: ``orsta-trl eval``, the difficulty filter, and the trainer's decoupled
evaluation (whose first run, before any GRPO step, checks the warm-up's starting point).

:func:`offline_session` is the setup every command shares: the recipe's settings → the records with the prompt
pool applied (once) → the model and processor (:func:`load_for_eval`) → reward settings whose pixel bounds are
the processor's → the router, and the recipe's tools with their tool-capable template. Its :class:`Scorer`
generates (the tool loop when there are tools) and scores; the trainer is handed one too, built on its own
router, so it never imports this package.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orsta_trl.data.records import Record
from orsta_trl.errors import RecipeError
from orsta_trl.evaluation.generate import Generated, generate
from orsta_trl.rewards.router import RewardRouter
from orsta_trl.rewards.sample import Sample


def score_generated(
    router: RewardRouter, records: list[Record], generated: list[Generated], iou_override="average"
) -> list[Sample]:
    """Score completions against their records with a fixed IoU setting; one sample per completion (a rollout's
    real tool outcomes reach the verifiers)."""
    rollouts = [g.rollout for g in generated] if any(g.rollout is not None for g in generated) else None
    samples = router.score(
        records, [g.text for g in generated], 1.0, iou_override=iou_override, rollouts=rollouts
    )
    return [
        s.with_generation(g.length, g.truncated, group=(s.data_source, s.id))
        for s, g in zip(samples, generated, strict=True)
    ]


@dataclass
class Scorer:
    """Generate completions of records and score them with ``router``: the tool loop when ``toolset`` is set.

    Called as ``scorer(model, processing_class, records, max_new_tokens=..., batch_size=..., iou=...)``; with
    ``num_samples`` and ``temperature``, k sampled completions per record (consecutive) instead of one greedy.
    """

    router: RewardRouter
    toolset: Any = None
    max_tool_iterations: int | None = None

    def generate(self, model, processing_class, records: list[Record], **kwargs) -> list[Generated]:
        return generate(
            model, processing_class, records, toolset=self.toolset, max_tool_iterations=self.max_tool_iterations,
            **kwargs,
        )  # fmt: skip

    def __call__(
        self, model, processing_class, records: list[Record], *, iou="average", **kwargs
    ) -> list[Sample]:
        generated = self.generate(model, processing_class, records, **kwargs)
        repeated = [record for record in records for _ in range(kwargs.get("num_samples", 1))]
        return score_generated(self.router, repeated, generated, iou)


@dataclass
class OfflineSession:
    """What :func:`offline_session` sets up: the recipe's settings, the pooled records, model, processor, scorer."""

    orsta: Any
    records: list[Record]
    model: Any
    processor: Any
    scorer: Scorer

    @property
    def settings(self):
        """The reward settings in use (the pixel bounds are the processor's)."""
        return self.scorer.router.settings


@contextlib.contextmanager
def offline_session(
    model_path: str, records: list[Record], recipe_path: str | None = None, *, load: bool = True
):
    """Set up the offline path for ``records`` (unpooled) under a recipe (or defaults); stop everything after.

    Args:
        model_path: a saved model (full, or a LoRA adapter folder).
        records: the records to generate for; the recipe's prompt pool is applied here.
        recipe_path: pixel bounds, reward settings, prompt pool and tools from this recipe; without one the
            checkpoint's processor is the source of truth for pixel bounds, and there are no tools.
        load: False for the settings and the pooled records only (nothing to generate: everything cached);
            ``model``, ``processor`` and ``scorer`` are then None and nothing is started.

    Yields:
        An :class:`OfflineSession` whose router is started (and whose MCP servers run, if any).
    """
    from orsta_trl.data.prompt_pool import pooled
    from orsta_trl.recipe import orsta_config_from, read_recipe_file

    orsta = orsta_config_from(recipe_path)
    iterations = read_recipe_file(recipe_path).get("max_tool_calling_iterations") if recipe_path else None
    records = pooled(records, orsta)  # the prompts training sees
    if not load:  # the settings and the pooled records only: nothing starts
        yield OfflineSession(orsta, records, None, None, None)
        return
    bounds = (orsta.min_pixels, orsta.max_pixels) if recipe_path else None
    model, processor = load_for_eval(model_path, pixel_bounds=bounds)
    settings = orsta.reward_settings()
    size = getattr(getattr(processor, "image_processor", None), "size", None)
    if size is not None:  # box rescaling must use the bounds the processor resizes with
        settings = dataclasses.replace(
            settings, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"]
        )
    toolset = offline_tools(orsta, processor)
    router = RewardRouter(records, settings)
    try:
        router.start()
        yield OfflineSession(orsta, records, model, processor, Scorer(router, toolset, iterations))
    finally:
        router.close()
        if toolset is not None:
            toolset.close()


def offline_tools(orsta, processor):
    """The recipe's tools (None without any), with the tool-capable template set on ``processor``."""
    from orsta_trl.tools.registry import recipe_tools

    try:
        return recipe_tools(orsta, processor)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None


def load_for_eval(checkpoint: str, *, pixel_bounds: tuple[int, int] | None = None, dtype: str = "auto"):
    """A saved model (full, or a LoRA adapter on its base) and its processor, on the GPU when there is one.

    ``pixel_bounds`` (min, max) replace the processor's own only when given (``--recipe``): by default the
    checkpoint's saved processor config is the source of truth, as in training.
    """
    import torch

    from orsta_trl.models.loading import is_vision_model, load_model, load_processor
    from orsta_trl.models.paths import adapter_base, check_model

    path = Path(
        check_model(checkpoint, what="checkpoint")
    )  # a typo or a non-model folder: a typed error at once
    adapter = path / "adapter_config.json"
    base = adapter_base(path) if adapter.exists() else str(path)
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
