"""Does a run resumed in its second epoch see the same prompts as an uninterrupted one? TRL's sampler vs ours.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/resume_order.py [--workdir /tmp/resume_order]

Two files of 4 records (tiny Qwen2.5-VL, 2 prompts a step, so 4 steps an epoch), 8 steps, a checkpoint at step
5 (second epoch). Each sampler trains uninterrupted, then again resumed from checkpoint-5; the script prints
the prompt ids of steps 6-8 from the completion dumps of both runs, and whether they agree. TRL's
``RepeatSampler`` draws each epoch from a generator that a resume does not replay; ``MixtureSampler`` (used
with ``datasets``; here with equal weights) derives each epoch's order from (seed, epoch).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/resume_order")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from test_sampling import dataset

    import orsta_trl
    from orsta_trl.models.tiny import make_tiny_vl
    from orsta_trl.recipe import load_recipe

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    tiny = make_tiny_vl(work / "tiny", min_pixels=3136, max_pixels=50176)
    a, b = dataset(work / "a", "alpha", 4), dataset(work / "b", "beta", 4)
    samplers = {
        "TRL RepeatSampler": {"train_files": [str(a), str(b)]},
        "MixtureSampler": {"train_files": [], "datasets": [{"path": str(a)}, {"path": str(b)}]},
    }
    for name, data in samplers.items():
        base = work / name.replace(" ", "_")

        def run(out: Path, data: dict = data, **extra) -> None:
            recipe = load_recipe(REPO / "recipes/tiny_cpu.yaml", {
                "model_name_or_path": str(tiny), "output_dir": str(out), "max_steps": 8, "save_steps": 5,
                "max_completion_length": 2, "num_generations": 2, "per_device_train_batch_size": 4,
                "report_to": [], "eval_datasets": [], "logging_steps": 1, "dump_completions": 1.0, **data, **extra,
            })  # fmt: skip
            orsta_trl.train(recipe)

        run(base / "full")
        (base / "resumed").mkdir(parents=True)
        shutil.copytree(base / "full" / "checkpoint-5", base / "resumed" / "checkpoint-5")
        run(base / "resumed", resume_from_checkpoint=str(base / "resumed" / "checkpoint-5"))
        for step in (6, 7, 8):
            full, resumed = (
                [json.loads(x)["id"] for x in (base / r / "completions" / f"step_{step:07d}.jsonl").read_text().split("\n") if x][::2]
                for r in ("full", "resumed")
            )  # fmt: skip
            print(
                f"{name:<18} step {step}: uninterrupted {full} resumed {resumed} -> {'same' if full == resumed else 'DIFFERENT'}"
            )


if __name__ == "__main__":
    main()
