"""Does the demo learn? Held-out greedy accuracy after the warm-up and after GRPO, per source, over seeds.

For each seed: synthetic training records (that seed), the supervised warm-up of the tiny model
(``orsta-trl sft``), then GRPO with ``recipes/demo_cpu.yaml``; the held-out records are the same for every seed
(seed 1000). Prints the held-out curve per step of each run and its training diagnostics (reward, KL, gradient
norm, share of groups with one reward for all), then per source the warm-up and GRPO accuracies of every seed,
the median and worst gain, the binomial standard error of one evaluation, and CPU times. In-process, one seed
after the other. With ``--out``, a seed's warm-up is reused when its folder already holds one (``--set`` changes
GRPO only), and each run's metrics and TRL log history are kept (``run-<seed>/metrics.csv``, ``log.json``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/demo_learning.py [--seeds 0 1 2] [--tasks colour shape]
        [--n 400] [--eval-n 200] [--max-steps N (the recipe's: 90)] [--warmup-steps 400] [--out DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import math
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

DIAGNOSTICS = ("reward", "kl", "grad_norm", "entropy", "frac_reward_zero_std")


def diagnostics(log_history: list[dict]) -> str:
    """TRL's training log as a small table: one row per logged step, the columns of :data:`DIAGNOSTICS`."""
    rows = [entry for entry in log_history if "reward" in entry and "step" in entry]
    lines = [f"{'step':>5} " + " ".join(f"{name:>20}" for name in DIAGNOSTICS)]
    for entry in rows:
        cells = (f"{entry[name]:>20.4f}" if name in entry else f"{'-':>20}" for name in DIAGNOSTICS)
        lines.append(f"{entry['step']:>5} " + " ".join(cells))
    return "\n".join(lines)


def run_seed(seed: int, args, work: Path, tiny: Path, held_out: Path) -> dict:
    """Warm-up (or its cached result) and GRPO for one seed; the gains, curves and CPU seconds."""
    from orsta_trl.api import train
    from orsta_trl.data.synth import synth
    from orsta_trl.monitor.held_out import held_out_gains
    from orsta_trl.recipe import load_recipe, read_yaml
    from orsta_trl.warmup import sft_warmup

    data = synth(work / f"train-{seed}", n=args.n, seed=seed, tasks=args.tasks)
    keys = {"train_files": [str(data)], "eval_datasets": [str(held_out)], "seed": seed, "report_to": []}
    if args.max_steps:
        keys["max_steps"] = args.max_steps
    if args.warmup_steps:
        keys["warmup_sft_steps"] = args.warmup_steps
    warm, cpu = work / f"warm-{seed}", time.process_time()
    if not (warm / "config.json").exists():
        sft_warmup(load_recipe(REPO / args.recipe, model_name_or_path=str(tiny), **keys), warm)
    warm_cpu, cpu = time.process_time() - cpu, time.process_time()
    extra = {k: read_yaml(v) for k, v in (item.split("=", 1) for item in args.set)}
    run_dir = work / f"run-{seed}{args.tag}"
    result = train(
        load_recipe(
            REPO / args.recipe, model_name_or_path=str(warm), output_dir=str(run_dir), **keys, **extra
        )
    )
    grpo_cpu = time.process_time() - cpu
    result.metrics.to_csv(run_dir / "metrics.csv", index=False)
    log = result.trainer.state.log_history
    (run_dir / "log.json").write_text(json.dumps(log))
    curve = result.metrics.query("split == 'eval'").pivot(
        index="step", columns="data_source", values="accuracy"
    )
    print(f"\nseed {seed}: held-out accuracy per step\n{curve.round(3)}")
    print(f"\nseed {seed}: training diagnostics (TRL's log)\n{diagnostics(log)}", flush=True)
    return {"gains": held_out_gains(result.trainer.source_history), "curve": curve, "warm_cpu": warm_cpu,
            "grpo_cpu": grpo_cpu}  # fmt: skip


def summary(results: dict, eval_n: int) -> None:
    print(f"\nheld-out greedy accuracy ({eval_n} records per source), warm-up -> GRPO")
    sources = sorted(next(iter(results.values()))["gains"])
    print(f"{'source':<14} {'seed':>5} {'warm-up':>8} {'GRPO':>8} {'gain':>7} {'min along GRPO':>15}")
    for source in sources:
        for seed, r in results.items():
            g = r["gains"][source]
            low = r["curve"][source].min()
            print(
                f"{source:<14} {seed:>5} {g['first']:>8.3f} {g['last']:>8.3f} {g['gain']:>+7.3f} {low:>15.3f}"
            )
        gains = [r["gains"][source]["gain"] for r in results.values()]
        below = [s for s, r in results.items() if r["gains"][source]["gain"] < 0]
        p = statistics.mean(r["gains"][source]["first"] for r in results.values())
        print(
            f"{source:<14} median gain {statistics.median(gains):+.3f}, worst {min(gains):+.3f}, "
            f"seeds ending below their warm-up: {below or 'none'}; binomial standard error of one evaluation "
            f"at p={p:.2f}: {math.sqrt(p * (1 - p) / eval_n):.3f}"
        )
    for seed, r in results.items():
        print(
            f"  seed {seed}: CPU time warm-up {r['warm_cpu']:.0f} s, GRPO (with evaluations) {r['grpo_cpu']:.0f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=["colour", "shape"])
    parser.add_argument("--recipe", default="recipes/demo_cpu.yaml")
    parser.add_argument("--n", type=int, default=400, help="training records per task")
    parser.add_argument("--eval-n", type=int, default=200, help="held-out records per task")
    parser.add_argument("--max-steps", type=int, default=None, help="GRPO steps (default: the recipe's)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="SFT steps (default: the recipe's)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one); keeps warm-ups")
    parser.add_argument("--tag", default="", help="suffix of the run folders (run-<seed><tag>)")
    parser.add_argument(
        "--set", nargs="*", default=[], help="more recipe keys for GRPO: key=value (YAML values)"
    )
    args = parser.parse_args()

    import torch

    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl

    torch.set_num_threads(1)
    work = Path(args.out or tempfile.mkdtemp(prefix="orsta-demo-"))
    tiny = work / "tiny-vl"
    if not (tiny / "config.json").exists():
        make_tiny_vl(tiny, min_pixels=3136, max_pixels=50176)
    held_out = synth(work / "eval", n=args.eval_n, seed=1000, tasks=args.tasks)
    started = time.perf_counter()
    results = {seed: run_seed(seed, args, work, tiny, held_out) for seed in args.seeds}
    summary(results, args.eval_n)
    print(f"  wall time in all: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
