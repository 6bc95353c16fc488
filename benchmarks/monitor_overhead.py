"""What source-level monitoring costs: per batch of rows, and per training step of the tiny model.

    .venv/bin/python benchmarks/monitor_overhead.py [--steps 40]

1. ``compute_metrics`` on 1,024 rows from 4 sources (the work added to each generation batch);
2. a tiny CPU training run on the six synthetic tasks: the mean step time and the mean time spent in the
   monitor (gathering rows, metrics, summary; TRL's own logging excluded), as logged by the trainer
   (``step_time`` and ``monitor/seconds``), with and without completion dumps.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def rows_benchmark() -> None:
    from orsta_trl.monitor.source_metrics import compute_metrics
    from orsta_trl.rewards.sample import Sample

    rng = random.Random(0)
    words = ["so", "wait", "let me verify", "thus", "re-check"]
    rows = [
        Sample(
            data_source=f"source_{i % 4}",
            id=str(i),
            reward=rng.random(),
            accuracy=float(rng.random() > 0.5),
            format=1.0,
            parts={"precision@0.5": rng.random(), "ap": rng.random()},
            reason=rng.choice([None, None, "no_answer"]),
            length=rng.randint(10, 2048),
            truncated=rng.random() < 0.1,
            text=" ".join(rng.choices(words, k=200)),
            group=i // 8,
        )
        for i in range(1024)
    ]
    best = min(_timed(lambda: compute_metrics(rows)) for _ in range(5))
    print(f"compute_metrics, 1,024 rows (4 sources, ~1 KB of text each): {best * 1000:.1f} ms")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_benchmark(steps: int) -> None:
    from orsta_trl.api import train
    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl
    from orsta_trl.recipe import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, data = make_tiny_vl(tmp / "tiny"), synth(tmp / "data", n=16)
        for dump in (0.0, 1.0):
            recipe = load_recipe(
                REPO / "recipes/tiny_cpu.yaml",
                {
                    "model_name_or_path": str(model),
                    "train_files": [str(data)],
                    "eval_datasets": [],
                    "output_dir": str(tmp / f"run{dump}"),
                    "max_steps": steps,
                    "save_strategy": "no",
                    "report_to": [],
                    "dump_completions": dump,
                },
            )
            history = train(recipe).trainer.state.log_history
            step = [h["step_time"] for h in history if "step_time" in h][5:]  # skip warm-up steps
            monitor = [h["monitor/seconds"] for h in history if "monitor/seconds" in h][5:]
            print(
                f"tiny model, dumps {'on ' if dump else 'off'}: step {statistics.mean(step) * 1000:.1f} ms, "
                f"monitor {statistics.mean(monitor) * 1000:.2f} ms "
                f"({statistics.mean(monitor) / statistics.mean(step):.1%} of a step)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    rows_benchmark()
    training_benchmark(args.steps)


if __name__ == "__main__":
    main()
