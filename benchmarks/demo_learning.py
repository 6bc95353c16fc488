"""Does the demo learn? Held-out greedy accuracy after the warm-up and after GRPO, per source, over seeds.

For each seed: synthetic training records (that seed), the supervised warm-up of the tiny model
(``orsta-trl sft``), then GRPO with ``recipes/demo_cpu.yaml``; the held-out records are the same for every seed
(seed 1000). Prints the held-out curve per step of each run, then per source the warm-up and GRPO accuracies of
every seed, the median gain and the wall times. In-process, one seed after the other.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_learning.py [--seeds 0 1 2] [--tasks colour position]
        [--n 400] [--eval-n 200] [--max-steps 60] [--warmup-steps 400] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=["colour", "position"])
    parser.add_argument("--n", type=int, default=400, help="training records per task")
    parser.add_argument("--eval-n", type=int, default=200, help="held-out records per task")
    parser.add_argument("--max-steps", type=int, default=None, help="GRPO steps (default: the recipe's)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="SFT steps (default: the recipe's)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument(
        "--set", nargs="*", default=[], help="more recipe keys for GRPO: key=value (YAML values)"
    )
    args = parser.parse_args()

    import torch

    from orsta_trl.api import train
    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl
    from orsta_trl.monitor.held_out import held_out_gains
    from orsta_trl.recipe import load_recipe, read_yaml
    from orsta_trl.warmup import sft_warmup

    torch.set_num_threads(1)
    work = Path(args.out or tempfile.mkdtemp(prefix="orsta-demo-"))
    tiny = make_tiny_vl(work / "tiny-vl", min_pixels=3136, max_pixels=50176)
    held_out = synth(work / "eval", n=args.eval_n, seed=1000, tasks=args.tasks)
    results = {}
    for seed in args.seeds:
        data = synth(work / f"train-{seed}", n=args.n, seed=seed, tasks=args.tasks)
        keys = {"train_files": [str(data)], "eval_datasets": [str(held_out)], "seed": seed, "report_to": []}
        if args.max_steps:
            keys["max_steps"] = args.max_steps
        if args.warmup_steps:
            keys["warmup_sft_steps"] = args.warmup_steps
        started = time.perf_counter()
        warm = sft_warmup(
            load_recipe(REPO / "recipes/demo_cpu.yaml", model_name_or_path=str(tiny), **keys),
            work / f"warm-{seed}",
        )
        warm_s = time.perf_counter() - started
        started = time.perf_counter()
        result = train(
            load_recipe(
                REPO / "recipes/demo_cpu.yaml",
                model_name_or_path=str(warm),
                output_dir=str(work / f"run-{seed}"),
                **keys,
                **{k: read_yaml(v) for k, v in (item.split("=", 1) for item in args.set)},
            )
        )
        grpo_s = time.perf_counter() - started
        curve = result.metrics.query("split == 'eval'")[["step", "data_source", "accuracy"]]
        print(
            f"\nseed {seed}: held-out accuracy per step\n{curve.pivot(index='step', columns='data_source').round(3)}"
        )
        results[seed] = (held_out_gains(result.trainer.source_history), warm_s, grpo_s)

    print(f"\nheld-out greedy accuracy ({args.eval_n} records per source), warm-up -> GRPO")
    sources = sorted(next(iter(results.values()))[0])
    for source in sources:
        cells = [
            f"seed {s}: {g[source]['first']:.3f} -> {g[source]['last']:.3f}"
            for s, (g, _, _) in results.items()
        ]
        gains = [g[source]["gain"] for g, _, _ in results.values()]
        print(f"  {source:<16} " + "  ".join(cells) + f"  median gain {statistics.median(gains):+.3f}")
    for seed, (_, warm_s, grpo_s) in results.items():
        print(f"  seed {seed}: warm-up {warm_s:.0f} s wall, GRPO (with evaluations) {grpo_s:.0f} s wall")


if __name__ == "__main__":
    main()
