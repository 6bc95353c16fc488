"""Train a policy with GRPO from a recipe.

    accelerate launch orsta_trl/train.py recipes/det_7b.yaml [--key value ...]
    orsta-trl train recipes/tiny_cpu.yaml
    python -m orsta_trl.train recipes/tiny_cpu.yaml --max_steps 5

Each phase below is one step of the walk of a record: recipe → records → model and processor → rows →
rewards → trainer → train → save and summarise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if (
    __name__ == "__main__" and not __package__
):  # run as a file by accelerate: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def run(recipe) -> OrstaRun:
    from orsta_trl.data.records import load_records
    from orsta_trl.data.rows import filter_long_prompts, to_trl_dataset
    from orsta_trl.evaluation import per_source_subset
    from orsta_trl.models.loading import is_vision_model, load_model, load_processor, model_view
    from orsta_trl.trainer import OrstaGRPOTrainer
    from orsta_trl.verifiers.router import RewardRouter

    grpo, model_args, orsta = recipe.grpo, recipe.model, recipe.orsta
    name = model_args.model_name_or_path
    if not name:
        raise SystemExit("the recipe needs model_name_or_path")
    if not orsta.train_files:
        raise SystemExit("the recipe needs train_files")

    # ---- records: validated before anything heavy is loaded
    records = load_records(orsta.train_files)
    _say(f"loaded {len(records)} records from {len(orsta.train_files)} file(s)")
    eval_records = per_source_subset(load_records(orsta.eval_datasets), orsta.eval_max_samples)
    if eval_records:
        _say(f"loaded {len(eval_records)} evaluation records from {len(orsta.eval_datasets)} file(s)")

    # ---- processor and model
    vision = is_vision_model(name)
    processor = load_processor(name, min_pixels=orsta.min_pixels, max_pixels=orsta.max_pixels, vision=vision)
    if vision and grpo.use_vllm and grpo.vllm_mode == "colocate":
        from accelerate import PartialState

        view, state = Path(grpo.output_dir) / "model_view", PartialState()
        with state.main_process_first():  # one rank writes the view; the others wait, then read it
            if state.is_main_process:
                model_view(name, processor, view, model_args.model_revision)
        name = str(view)
        _say(f"colocated vLLM reads the processor config from {name}")
    model = load_model(
        name,
        vision=vision,
        dtype=model_args.dtype,
        attn_implementation=model_args.attn_implementation,
        revision=model_args.model_revision,
    )

    # ---- rows: drop prompts that do not fit
    records, dropped = filter_long_prompts(records, processor, orsta.max_prompt_length)
    if dropped:
        _say(
            f"dropped {sum(dropped.values())} prompt(s) longer than max_prompt_length={orsta.max_prompt_length}: "
            + ", ".join(f"{s}={n}" for s, n in sorted(dropped.items()))
        )
    if not records:
        raise SystemExit("no record is left to train on")
    dataset = to_trl_dataset(records, vision=vision)

    # ---- rewards
    router = RewardRouter.from_records(records, orsta.reward_settings())
    router.add_records(eval_records, split="eval")
    router.start()

    # ---- trainer
    from trl import get_peft_config

    trainer = OrstaGRPOTrainer(
        model=model,
        args=grpo,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        router=router,
        orsta=orsta,
        eval_records=eval_records,
    )

    state = trainer.accelerator.state
    _say(f"{state.num_processes} process(es), {state.distributed_type.value}, device {state.device}")

    # ---- train
    try:
        trainer.train(resume_from_checkpoint=grpo.resume_from_checkpoint)
    finally:
        router.close()

    # ---- save and summarise
    trainer.save_model(grpo.output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(grpo.output_dir)
        print("\nper-source summary (all ranks; reward over the run, its first and last quarter)")
        print(trainer.summary.table(), flush=True)
    return OrstaRun(trainer, router, dropped)


class OrstaRun:
    """What :func:`run` returns: the trainer (state, metrics), the router, and the prompts dropped per source."""

    def __init__(self, trainer, router, dropped):
        self.trainer, self.router, self.dropped = trainer, router, dropped


def _say(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[orsta-trl] {message}", flush=True)


def main(argv: list[str] | None = None) -> None:
    from orsta_trl.recipe import RecipeError, load_recipe

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv else 2)
    try:
        recipe = load_recipe(argv[0], argv[1:])
    except RecipeError as exc:
        raise SystemExit(f"error: {exc}") from None
    from orsta_trl.data.records import DatasetError
    from orsta_trl.verifiers.base import NotReady

    try:
        run(recipe)
    except (DatasetError, NotReady) as exc:  # bad data or a missing reward model: before any training
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
