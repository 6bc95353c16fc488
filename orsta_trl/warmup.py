"""Supervised warm-up: a short SFT on the records' reference answers, the "instruct" starting point of GRPO.

Real GRPO starts from an instruct model that already answers in the expected form; a random-weight tiny model
does not, so its groups get identical zero rewards and GRPO has nothing to learn from. :func:`sft_warmup`
trains the recipe's model with TRL's ``SFTTrainer`` for ``warmup_sft_steps`` steps on prompt-completion rows
built from the training records: the prompt as in GRPO, the completion ``warmup_sft_template`` filled with the
record's reference answer (``extra["answer"]``, else a string ``ground_truth``), and saves model and processor.

TRL's vision collator is used as is: it passes the processor's ``mm_token_type_ids`` (Qwen2.5-VL's M-RoPE
needs them), so the warm-up learns the same position ids that ``generate()`` uses. A hand-written loop that
drops them learns positions generation never sees, and GRPO then starts from a broken model. The vision tower
stays frozen, as in GRPO (``freeze_vision``). Only the completion is in the loss (TRL's default for
prompt-completion data).
"""

from __future__ import annotations

from pathlib import Path

from orsta_trl.console import say
from orsta_trl.errors import DataError, RecipeError
from orsta_trl.recipe import Recipe


def reference_answer(record) -> str:
    """The text a record's warm-up completion is built from: ``extra["answer"]``, else a string ground truth.

    Args:
        record: a validated :class:`~orsta_trl.data.records.Record`.

    Returns:
        The reference answer.

    Raises:
        DataError: naming the record when it has neither.
    """
    answer = record.extra.get("answer")
    if answer is None and isinstance(record.raw_reward.get("ground_truth"), str):
        answer = record.raw_reward["ground_truth"]
    if answer is None:
        raise DataError(
            f"source {record.data_source!r}, record {record.id!r}: the warm-up needs a reference answer: give "
            "extra.answer (a string), or a string reward.ground_truth"
        )
    return str(answer)


def sft_rows(records, template: str, *, vision: bool):
    """A prompt-completion ``datasets.Dataset`` for TRL's SFTTrainer (images decoded lazily)."""
    import datasets

    from orsta_trl.data.rows import prompt_messages

    rows = []
    for record in records:
        text = template.format(answer=reference_answer(record))
        completion = [{"role": "assistant", "content": [{"type": "text", "text": text}] if vision else text}]
        row = {"prompt": prompt_messages(record, vision=vision), "completion": completion}
        if vision:
            row["images"] = list(record.images)
        rows.append(row)
    dataset = datasets.Dataset.from_list(rows)
    if vision and any(r.images for r in records):
        dataset = dataset.cast_column("images", datasets.List(datasets.Image()))
    return dataset


def sft_warmup(recipe: Recipe, out_dir: str | Path, *, steps: int | None = None) -> Path:
    """Warm the recipe's model up with SFT on its training records; save model and processor to ``out_dir``.

    Args:
        recipe: the recipe (its model, train_files, pixel bounds, seed, CPU settings and ``warmup_sft_*`` keys).
        out_dir: where the warmed-up model and its processor are written.
        steps: SFT steps (default: the recipe's ``warmup_sft_steps``).

    Returns:
        ``Path(out_dir)``, loadable with ``from_pretrained`` and usable as a recipe's ``model_name_or_path``.

    Raises:
        RecipeError, DataError: before the model loads.
    """
    from orsta_trl.data.load import load_pooled
    from orsta_trl.models.loading import freeze_vision, is_vision_model, load_model, load_processor

    grpo, orsta, name = recipe.grpo, recipe.orsta, recipe.model.model_name_or_path
    steps = orsta.warmup_sft_steps if steps is None else steps
    if not steps or steps <= 0:
        raise RecipeError("warmup_sft_steps: give a positive number of SFT steps (e.g. 150 for the demo)")
    if not name or not Path(name).exists() and name.count("/") != 1:
        raise RecipeError(f"model_name_or_path: no such folder {name!r}")
    records, _ = load_pooled(orsta.train_files, orsta)  # the prompts GRPO will see (prompt pool)
    if not records:
        raise DataError(f"{', '.join(map(str, orsta.train_files))}: no records to warm up on")
    for record in records:  # every reference answer, before anything is loaded
        reference_answer(record)
    try:
        vision = is_vision_model(name)
    except OSError as exc:
        raise RecipeError(f"model_name_or_path {name!r}: cannot read its config ({exc})") from None
    dataset = sft_rows(records, orsta.warmup_sft_template, vision=vision)
    say(f"warm-up: {steps} SFT steps on {len(records)} records from {name}")

    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    from orsta_trl.monitor.writing import console_callback

    processor = load_processor(name, min_pixels=orsta.min_pixels, max_pixels=orsta.max_pixels, vision=vision)
    model = load_model(name, vision=vision, dtype=recipe.model.dtype)
    if orsta.freeze_vision:
        freeze_vision(model, freeze_merger=orsta.freeze_merger)
    config = SFTConfig(
        output_dir=str(Path(out_dir) / "sft-logs"),
        max_steps=steps,
        learning_rate=orsta.warmup_sft_learning_rate,
        lr_scheduler_type="constant",
        per_device_train_batch_size=orsta.warmup_sft_batch_size,
        gradient_accumulation_steps=1,
        max_length=None,  # truncating would cut image tokens
        seed=grpo.seed,
        use_cpu=grpo.use_cpu,
        bf16=grpo.bf16,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        save_strategy="no",
        report_to="none",
        logging_steps=max(1, steps // 10),
        disable_tqdm=False,  # transformers' progress bar, with one compact line per log
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=processor)
    for printer in (ProgressCallback, PrinterCallback):
        if trainer.pop_callback(printer) is not None:
            trainer.add_callback(console_callback(printer)())
    trainer.train()
    out = Path(out_dir)
    trainer.model.save_pretrained(out)
    processor.save_pretrained(out)
    say(f"warm-up: wrote {out}")
    return out
