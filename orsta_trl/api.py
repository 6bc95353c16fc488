"""Training from Python: build the trainer from a recipe, train it, and get the per-source metrics back.

Each phase of :func:`build_trainer` is a named function, one step of the walk of a record: recipe → records
(validated, pooled, verifiers checked ready) → processor → tools → rows (too-long prompts dropped, tool schemas
counted; the sampling plan) → model → rewards and trainer; then train → save and summarise. Everything that can
be wrong with the data is found before the model loads, the last heavy step. ``orsta_trl/train.py`` (the entry point of ``accelerate launch``) and
``orsta-trl train`` call :func:`train`; notebooks call it directly::

    import orsta_trl
    recipe = orsta_trl.load_recipe("recipes/tiny_cpu.yaml", max_steps=10)
    result = orsta_trl.train(recipe)
    result.metrics.query("split == 'train'")[["step", "data_source", "reward", "accuracy"]]

Everything that can be wrong with the recipe or the data is raised (as :class:`~orsta_trl.errors.RecipeError`,
:class:`~orsta_trl.errors.DataError` or :class:`~orsta_trl.errors.NotReady`) before the model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orsta_trl.console import say
from orsta_trl.errors import DataError, RecipeError
from orsta_trl.recipe import Recipe, load_recipe
from orsta_trl.recipe.paths import check_paths


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        trainer: the :class:`~orsta_trl.trainer.OrstaGRPOTrainer` (its ``state``, ``model``, ``router``).
        metrics: the per-source metrics as a pandas DataFrame, one row per (split, step, data_source), one
            column per metric (``reward``, ``accuracy``, ``length/mean``, ...).
        output_dir: where the model, the processor and the logs were written.
        dropped: prompts dropped as too long, per data_source.
    """

    trainer: Any
    metrics: Any
    output_dir: Path
    dropped: dict[str, int] = field(default_factory=dict)


def build_trainer(recipe: Recipe | str | Path, **overrides: Any):
    """Everything up to training: validate records, load model and processor, build rewards and the trainer.

    Args:
        recipe: a :class:`~orsta_trl.recipe.Recipe`, or the path of a YAML recipe.
        **overrides: recipe keys as keyword arguments, with a path only (a RecipeError with a Recipe object:
            pass them to :func:`~orsta_trl.recipe.load_recipe` instead).

    Returns:
        The :class:`~orsta_trl.trainer.OrstaGRPOTrainer`, not yet trained. Its reward workers are started;
        ``trainer.router.close()`` stops them (:func:`train` does that itself). With MCP tools, their servers
        are running too; ``trainer.toolset.close()`` stops them. ``trainer.dropped`` holds the
        prompts dropped as too long, per data_source.

    Raises:
        RecipeError, DataError, NotReady: before the model loads.
    """
    recipe = _recipe(recipe, overrides)
    check_paths(recipe)
    from orsta_trl.models.lora import check_quantization

    check_quantization(recipe.model, f"{recipe.path}: " if recipe.path else "")
    records = _records_phase(recipe.orsta)
    processor, vision = recipe_processor(recipe)  # the processor phase
    toolset = _toolset(recipe.orsta, processor)  # MCP servers start here
    try:
        rows = _rows_phase(records, processor, recipe.orsta, toolset)
        model = _model_phase(recipe, processor, vision)
        return _trainer_phase(recipe, records, rows, processor, model, vision, toolset)
    except BaseException:  # nothing started here outlives a failed build: tool servers, reward workers
        if toolset is not None:
            toolset.close()
        raise


@dataclass
class _Records:
    """The records phase: training and evaluation records (prompt pool applied), the skipped ones, and the
    verifiers they use (checked ready once, here)."""

    train: list
    eval: list
    skipped: list
    verifiers: list


@dataclass
class _Rows:
    """The rows phase: the records that fit, the dropped counts, TRL's dataset, and the sampling plan."""

    kept: list
    dropped: dict
    dataset: Any
    sampling: Any


def _records_phase(orsta) -> _Records:
    """Records validated, pooled and their verifiers checked ready, before anything heavy is loaded."""
    from orsta_trl.data.load import load_pooled
    from orsta_trl.rewards.router import check_ready

    records, skipped = load_pooled(orsta.train_files, orsta, skip_invalid=orsta.skip_invalid, what="training")
    if not records:
        raise DataError(
            f"{', '.join(map(str, orsta.train_files))}: no records to train on (the files are empty)"
        )
    say(f"loaded {len(records)} records from {len(orsta.train_files)} file(s)")
    eval_records, skipped_eval = load_pooled(
        orsta.eval_datasets, orsta, skip_invalid=orsta.skip_invalid, what="evaluation",
        limit_per_source=orsta.eval_max_samples,
    )  # fmt: skip
    if eval_records:
        say(f"loaded {len(eval_records)} evaluation records from {len(orsta.eval_datasets)} file(s)")
    verifiers = check_ready([*records, *eval_records], orsta.reward_settings())
    from orsta_trl.data.sampling import curriculum_pass_rates

    curriculum_pass_rates(records, orsta.curriculum)  # a record the curriculum cannot order fails here, early
    return _Records(records, eval_records, skipped + skipped_eval, verifiers)


def recipe_processor(recipe: Recipe):
    """(processor, whether the model sees images) that training with this recipe uses: its pixel bounds."""
    from orsta_trl.models.loading import is_vision_model, load_processor

    name, orsta = recipe.model.model_name_or_path, recipe.orsta
    try:
        vision = is_vision_model(name)
    except OSError as exc:
        where = f"{recipe.path}: " if recipe.path else ""
        raise RecipeError(f"{where}model_name_or_path {name!r}: cannot read its config ({exc})") from None
    processor = load_processor(name, min_pixels=orsta.min_pixels, max_pixels=orsta.max_pixels, vision=vision)
    return processor, vision


def _rows_phase(records: _Records, processor, orsta, toolset) -> _Rows:
    """Drop prompts that do not fit (tool schemas counted), build TRL's dataset and the sampling plan, once."""
    from orsta_trl.data.rows import filter_long_prompts, to_trl_dataset

    tools = None if toolset is None else toolset.schema_tools()
    kept, dropped = filter_long_prompts(records.train, processor, orsta.max_prompt_length, tools=tools)
    if dropped:
        say(
            f"dropped {sum(dropped.values())} prompt(s) longer than max_prompt_length={orsta.max_prompt_length}: "
            + ", ".join(f"{s}={n}" for s, n in sorted(dropped.items()))
        )
    if not kept:
        raise DataError(
            f"no record is left to train on: all {len(records.train)} prompts are longer than "
            f"max_prompt_length={orsta.max_prompt_length} (raise it, or lower max_pixels)"
        )
    vision = getattr(processor, "tokenizer", processor) is not processor
    return _Rows(kept, dict(dropped), to_trl_dataset(kept, vision=vision), _sampling_plan(kept, orsta))


def _model_phase(recipe: Recipe, processor, vision: bool):
    """The policy; with colocated vLLM on a vision model, loaded from a view whose processor config has the
    recipe's pixel bounds (vLLM re-reads it)."""
    from orsta_trl.models.loading import load_model, model_view
    from orsta_trl.models.lora import quantization_kwargs

    grpo, model_args = recipe.grpo, recipe.model
    name = model_args.model_name_or_path
    if vision and grpo.use_vllm and grpo.vllm_mode == "colocate":
        from accelerate import PartialState

        view, state = Path(grpo.output_dir) / "model_view", PartialState()
        with state.main_process_first():  # one rank writes the view; the others wait, then read it
            if state.is_main_process:
                model_view(name, processor, view, model_args.model_revision)
        name = str(view)
        say(f"colocated vLLM reads the processor config from {name}")
    return load_model(
        name,
        vision=vision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
        revision=model_args.model_revision,
        **quantization_kwargs(model_args),
    )


def _trainer_phase(recipe: Recipe, records: _Records, rows: _Rows, processor, model, vision: bool, toolset):
    """The router over the rows' records, the evaluator over the held-out ones, and the trainer."""
    from orsta_trl.evaluation import Scorer
    from orsta_trl.models.lora import lora_config
    from orsta_trl.rewards.router import RewardRouter
    from orsta_trl.trainer import OrstaGRPOTrainer

    grpo, orsta = recipe.grpo, recipe.orsta
    router = RewardRouter(rows.kept, orsta.reward_settings())
    evaluator = Scorer(router, toolset, grpo.max_tool_calling_iterations) if records.eval else None
    try:
        trainer = OrstaGRPOTrainer(
            model=model,
            args=grpo,
            train_dataset=rows.dataset,
            processing_class=processor,
            peft_config=lora_config(
                recipe.model,
                vision=vision,
                freeze_vision=orsta.freeze_vision,
                freeze_merger=orsta.freeze_merger,
            ),
            router=router,
            orsta=orsta,
            eval_records=records.eval,
            evaluator=evaluator,
            sampling=rows.sampling,
            toolset=toolset,
        )
        pool = router.start(ready=records.verifiers)
    except BaseException:
        router.close()
        raise
    trainer.dropped = rows.dropped
    trainer.skipped = records.skipped
    if pool is not None:
        say(pool.describe())
    state = trainer.accelerator.state
    say(f"{state.num_processes} process(es), {state.distributed_type.value}, device {state.device}")
    return trainer


def _sampling_plan(records, orsta):
    """The mixture / curriculum plan of ``records`` (None without either); each record takes the weight of the
    ``datasets`` entry it was loaded from (``Record.origin``)."""
    from orsta_trl.data.sampling import sampling_plan

    if orsta.datasets is None and orsta.curriculum is None:
        return None
    origins, weights = {}, None
    if orsta.datasets is not None:
        weights = [float(item.get("weight", 1.0)) for item in orsta.datasets]
        origins = {record.key: record.origin for record in records}
    return sampling_plan(records, origins, weights, orsta.curriculum)


def _toolset(orsta, processor):
    """The tools phase: the run's tools (None without any); the processor gets the tool-capable template. MCP
    servers start."""
    from orsta_trl.tools.registry import recipe_tools

    try:
        toolset = recipe_tools(orsta, processor)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    if toolset is not None:
        say(f"tools: {', '.join(toolset.names)}")
    return toolset


def prompt_setup(recipe: Recipe | str | Path):
    """(processor, max_prompt_length, tool list) that training with this recipe counts prompts with: what the
    prompt-length rule of ``orsta-trl filter rules --recipe`` needs. MCP servers are listed, then stopped."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, check=True)
    processor, _ = recipe_processor(recipe)
    toolset = _toolset(recipe.orsta, processor)
    if toolset is None:
        return processor, recipe.orsta.max_prompt_length, None
    try:
        return processor, recipe.orsta.max_prompt_length, toolset.schema_tools()
    finally:
        toolset.close()


def train(recipe: Recipe | str | Path, **overrides: Any) -> TrainResult:
    """Train with GRPO from a recipe; save the model and processor; print the per-source summary.

    Args:
        recipe: a :class:`~orsta_trl.recipe.Recipe`, or the path of a YAML recipe.
        **overrides: recipe keys as keyword arguments (``max_steps=10``).

    Returns:
        A :class:`TrainResult` with the trainer, the per-source metrics DataFrame and the output folder.

    Raises:
        RecipeError, DataError, NotReady: before the model loads.
    """
    from orsta_trl.monitor.held_out import format_gains, held_out_gains

    recipe = _recipe(recipe, overrides)
    trainer = build_trainer(recipe)
    try:
        trainer.train(resume_from_checkpoint=recipe.grpo.resume_from_checkpoint)
    finally:  # also on Ctrl-C: stop the reward workers, then whatever registered a shutdown hook
        from orsta_trl.rewards.shutdown import run_shutdown_hooks

        trainer.router.close()
        if trainer.toolset is not None:  # MCP servers stop with the run
            trainer.toolset.close()
        run_shutdown_hooks()

    # ---- save and summarise
    output_dir = Path(recipe.grpo.output_dir)
    trainer.save_model(str(output_dir))
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(str(output_dir))
        print("\nper-source summary (all ranks; reward over the run, its first and last quarter)")
        print(trainer.summary.table(), flush=True)
        gains = format_gains(held_out_gains(trainer.source_history))
        if gains:
            print("\nheld-out greedy accuracy: first evaluation (before GRPO) -> last evaluation", flush=True)
            print(gains, flush=True)
    return TrainResult(trainer, metrics_frame(trainer.source_history), output_dir, trainer.dropped)


def view(run_dir: str | Path, source=None, step=None, data_files=()):
    """The run's completions as one viewer page, rendered inline by Jupyter (``_repr_html_``).

    Per source and step (training and held-out evaluation): the prompt, the image with ground-truth and
    predicted boxes in original pixels, each completion's reward, parts, reason, advantage and truncation, and
    tool transcripts; the same page ``orsta-trl view`` writes.

    Args:
        run_dir: a run's ``output_dir``, trained with ``dump_completions > 0``.
        source: a data source, or a list of them (None: all).
        step: a step, ``"A:B"`` (either end open) or ``(A, B)`` (None: all).
        data_files: record files for images and ground truth, for dumps written without ``records.jsonl``.

    Returns:
        A :class:`~orsta_trl.monitor.viewer.View`: ``.save(path)`` writes the HTML file, ``.html`` is its text.
    """
    from orsta_trl.monitor.viewer import build_view

    sources = [source] if isinstance(source, str) else source
    return build_view(run_dir, sources=sources, steps=step, data_files=data_files)


def metrics_frame(history: list[dict]):
    """A DataFrame of per-source values: one row per (split, step, data_source), one column per metric."""
    import pandas as pd

    rows: dict[tuple, dict] = {}
    for entry in history:
        split, step, source = entry["split"], entry["step"], entry["source"]
        row = rows.setdefault((split, step, source), {"split": split, "step": step, "data_source": source})
        row[entry["metric"]] = entry["value"]
    frame = pd.DataFrame(list(rows.values()), columns=None if rows else ["split", "step", "data_source"])
    return frame.sort_values(["split", "step", "data_source"], ignore_index=True)


def _recipe(recipe, overrides: dict) -> Recipe:
    if not isinstance(recipe, Recipe):
        return load_recipe(recipe, overrides)
    if overrides:
        raise RecipeError(
            f"overrides {sorted(overrides)} given with a Recipe object: pass them to load_recipe(), "
            "or pass the recipe's path here"
        )
    return recipe
