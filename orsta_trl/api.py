"""Training from Python: build the trainer from a recipe, train it, and get the per-source metrics back.

Each phase is one step of the walk of a record: recipe → records → model and processor → rows → rewards →
trainer → train → save and summarise. ``orsta_trl/train.py`` (the entry point of ``accelerate launch``) and
``orsta-trl train`` call :func:`train`; notebooks call it directly::

    import orsta_trl
    recipe = orsta_trl.load_recipe("recipes/tiny_cpu.yaml", max_steps=10)
    result = orsta_trl.train(recipe)
    result.metrics.query("split == 'train'")[["step", "data_source", "reward", "accuracy"]]

Everything that can be wrong with the recipe or the data is raised (as :class:`~orsta_trl.errors.RecipeError`,
:class:`~orsta_trl.errors.DataError` or :class:`~orsta_trl.errors.NotReady`) before the model loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orsta_trl.console import say
from orsta_trl.errors import DataError, RecipeError
from orsta_trl.recipe import Recipe, load_recipe


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
    from orsta_trl.data.prompt_pool import pooled
    from orsta_trl.data.rows import filter_long_prompts, to_trl_dataset
    from orsta_trl.evaluation import per_source_subset
    from orsta_trl.models.loading import is_vision_model, load_model, load_processor, model_view
    from orsta_trl.models.lora import check_quantization, lora_config, quantization_kwargs
    from orsta_trl.rewards.router import RewardRouter, check_ready
    from orsta_trl.trainer import OrstaGRPOTrainer

    recipe = _recipe(recipe, overrides)
    grpo, model_args, orsta = recipe.grpo, recipe.model, recipe.orsta
    check_paths(recipe)
    check_quantization(model_args, f"{recipe.path}: " if recipe.path else "")
    name = model_args.model_name_or_path

    # ---- records: validated before anything heavy is loaded
    records, skipped = _load_records(orsta.train_files, orsta.skip_invalid, "training")
    if not records:
        raise DataError(
            f"{', '.join(map(str, orsta.train_files))}: no records to train on (the files are empty)"
        )
    say(f"loaded {len(records)} records from {len(orsta.train_files)} file(s)")
    eval_records, skipped_eval = _load_records(orsta.eval_datasets, orsta.skip_invalid, "evaluation")
    eval_records = per_source_subset(eval_records, orsta.eval_max_samples)
    records, eval_records = pooled(records, orsta), pooled(eval_records, orsta)  # prompt pool (issue 10)
    if eval_records:
        say(f"loaded {len(eval_records)} evaluation records from {len(orsta.eval_datasets)} file(s)")
    check_ready([*records, *eval_records], orsta.reward_settings())
    _sampling_plan(records, orsta)  # curriculum without pass_rate: fails before the model

    # ---- processor and model
    try:
        vision = is_vision_model(name)
    except OSError as exc:
        raise RecipeError(f"model_name_or_path {name!r}: cannot read its config ({exc})") from None
    processor = load_processor(name, min_pixels=orsta.min_pixels, max_pixels=orsta.max_pixels, vision=vision)
    if vision and grpo.use_vllm and grpo.vllm_mode == "colocate":
        from accelerate import PartialState

        view, state = Path(grpo.output_dir) / "model_view", PartialState()
        with state.main_process_first():  # one rank writes the view; the others wait, then read it
            if state.is_main_process:
                model_view(name, processor, view, model_args.model_revision)
        name = str(view)
        say(f"colocated vLLM reads the processor config from {name}")
    model = load_model(
        name,
        vision=vision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
        revision=model_args.model_revision,
        **quantization_kwargs(model_args),
    )

    # ---- rows: drop prompts that do not fit
    kept, dropped = filter_long_prompts(records, processor, orsta.max_prompt_length)
    if dropped:
        say(
            f"dropped {sum(dropped.values())} prompt(s) longer than max_prompt_length={orsta.max_prompt_length}: "
            + ", ".join(f"{s}={n}" for s, n in sorted(dropped.items()))
        )
    if not kept:
        raise DataError(
            f"no record is left to train on: all {len(records)} prompts are longer than "
            f"max_prompt_length={orsta.max_prompt_length} (raise it, or lower max_pixels)"
        )
    dataset = to_trl_dataset(kept, vision=vision)
    sampling = _sampling_plan(kept, orsta)  # mixture weights and curriculum (issue 10)

    # ---- tools (issue 11): our tool-capable chat template; built-in, user and MCP tools (servers start here)
    toolset = _toolset(orsta, processor, vision)

    # ---- rewards and trainer
    router = RewardRouter(kept, orsta.reward_settings())
    try:
        trainer = OrstaGRPOTrainer(
            model=model,
            args=grpo,
            train_dataset=dataset,
            processing_class=processor,
            peft_config=lora_config(
                model_args,
                vision=vision,
                freeze_vision=orsta.freeze_vision,
                freeze_merger=orsta.freeze_merger,
            ),
            router=router,
            orsta=orsta,
            eval_records=eval_records,
            sampling=sampling,
            toolset=toolset,
        )
        pool = router.start(also=eval_records)
    except BaseException:  # nothing started here outlives a failed build: tool servers, reward workers
        if toolset is not None:
            toolset.close()
        router.close()
        raise
    trainer.dropped = dict(dropped)
    trainer.skipped = skipped + skipped_eval
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


def _toolset(orsta, processor, vision: bool):
    """The run's tools (None without any); the processor gets the tool-capable template. MCP servers start."""
    if not (orsta.tools or orsta.tool_modules or orsta.mcp_servers):
        return None
    from orsta_trl.tools.chat import use_tool_template
    from orsta_trl.tools.registry import build_tools

    use_tool_template(processor, vision)
    try:
        toolset = build_tools(
            orsta.tools,
            orsta.tool_modules,
            orsta.mcp_servers,
            timeout_s=orsta.tool_timeout_s,
            memory_mb=orsta.tool_memory_mb,
            vision=vision,
            min_pixels=orsta.min_pixels,
            max_pixels=orsta.max_pixels,
        )
    except ValueError as exc:
        raise RecipeError(str(exc)) from None
    say(f"tools: {', '.join(toolset.names)}")
    return toolset


def check_paths(recipe: Recipe) -> None:
    """The recipe's paths, checked before anything loads: the model, the output folder, the checkpoint.

    ``resume_from_checkpoint: true`` is resolved here to the last ``checkpoint-*`` folder of ``output_dir``.

    Raises:
        RecipeError: naming the key, the path and what to change.
    """
    grpo, orsta, where = recipe.grpo, recipe.orsta, f"{recipe.path}: " if recipe.path else ""
    name = recipe.model.model_name_or_path
    if not name:
        raise RecipeError(f"{where}model_name_or_path is missing: name a model folder or a hub model")
    if not orsta.train_files:
        raise RecipeError(f"{where}train_files is missing: list the dataset files to train on")
    model = Path(name).expanduser()
    if model.exists() and not (model / "config.json").is_file():
        raise RecipeError(f"{where}model_name_or_path: {name} has no config.json (is it a model folder?)")
    looks_local = name.startswith((".", "/", "~")) or name.count("/") != 1
    if not model.exists() and looks_local:
        raise RecipeError(
            f"{where}model_name_or_path: no such folder {name} (relative paths start at {Path.cwd()}), "
            "and not a hub model id like 'Qwen/Qwen2.5-VL-7B-Instruct'"
        )
    out = Path(grpo.output_dir)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise RecipeError(f"{where}output_dir: {existing} is a file, so {out} cannot be created")
    if not os.access(existing, os.W_OK):
        raise RecipeError(f"{where}output_dir: {existing} is not writable")
    from orsta_trl.models.checkpoint import COMPLETE_MARKER, is_complete, last_complete_checkpoint

    if grpo.resume_from_checkpoint is True:
        last = last_complete_checkpoint(out) if out.is_dir() else None
        if last is None:
            raise RecipeError(
                f"{where}resume_from_checkpoint: true, but {out} holds no complete checkpoint-* folder"
            )
        grpo.resume_from_checkpoint = last
    elif grpo.resume_from_checkpoint and not Path(grpo.resume_from_checkpoint).is_dir():
        raise RecipeError(f"{where}resume_from_checkpoint: no such folder {grpo.resume_from_checkpoint}")
    elif grpo.resume_from_checkpoint and not is_complete(grpo.resume_from_checkpoint):
        raise RecipeError(
            f"{where}resume_from_checkpoint: {grpo.resume_from_checkpoint} is incomplete (no {COMPLETE_MARKER}: "
            "its writing was interrupted); resume from an earlier checkpoint, or give true for the last complete one"
        )


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


def _load_records(files: list, skip: bool, what: str) -> tuple[list, list]:
    """The records of ``files``; with ``skip_invalid`` the valid ones, the invalid ones reported and returned."""
    from orsta_trl.data.records import load_records, skipped_report, split_records

    if not skip:
        return load_records(files), []
    records, errors = split_records(files)
    if errors:
        say(
            f"skip_invalid: skipped {len(errors)} invalid {what} record(s), kept {len(records)}:\n"
            + skipped_report(errors)
        )
        for error in errors[:10]:
            say(f"  {error}")
    return records, errors


def _recipe(recipe, overrides: dict) -> Recipe:
    if not isinstance(recipe, Recipe):
        return load_recipe(recipe, overrides)
    if overrides:
        raise RecipeError(
            f"overrides {sorted(overrides)} given with a Recipe object: pass them to load_recipe(), "
            "or pass the recipe's path here"
        )
    return recipe
