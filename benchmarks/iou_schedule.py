"""The dynamic IoU reward against fixed thresholds, at toy scale (V-Triune's ablation of the IoU threshold).

Grounding a tiny model can learn: ``synth --tasks locate`` (one large shape on a 112x112 canvas, "Give the box
of the red circle."), scored by the ``detection`` verifier with labels not matched. Per seed: training records
(that seed), a supervised warm-up that also trains the random vision tower (``freeze_vision: false``; position is
not recoverable through it frozen), then GRPO from that warm-up (vision tower frozen, ``recipes/grounding_cpu.yaml``)
once per reward condition:

* ``fixed0.5`` / ``fixed0.99``: a fixed IoU threshold;
* ``paper``: V-Triune's schedule, 0.85 to 10 % of the steps, 0.95 to 25 %, then 0.99;
* ``scaled``: the same three-step shape with thresholds at the 50th, 75th and 90th percentile of the warm-up's
  IoU on its own training records (rounded down to 0.05): the paper's thresholds moved into the toy model's range;
* ``continuous``: a threshold of 1e-6, so the detection accuracy is ``0.7 * IoU + 0.3`` for any overlap.

Held-out metrics do not depend on the training threshold: greedy boxes on held-out records (seed 1000) give the
mean IoU, the accuracy at IoU 0.5 and 0.75 (share of records whose box reaches it), and COCO AP50 (pycocotools,
the decoupled evaluation). Training: the share of prompt groups whose rewards are all equal (TRL's
``frac_reward_zero_std``; in the cold start these are groups where every box missed the threshold) over the first
steps, and the reward curve. Results are cached per (seed, condition) in ``--out``, so a run that was cut short
resumes where it stopped; everything found is printed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/iou_schedule.py [--seeds 0 1 2] [--conditions ...]
        [--n 2000] [--eval-n 100] [--max-steps 40] [--warmup-steps 3000] --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE = REPO / "recipes/grounding_cpu.yaml"
PAPER = [[0.0, 0.85], [0.10, 0.95], [0.25, 0.99]]
FIXED = {"fixed0.5": [[0.0, 0.5]], "fixed0.99": [[0.0, 0.99]], "paper": PAPER, "continuous": [[0.0, 1e-6]]}
CONDITIONS = ("fixed0.5", "fixed0.99", "paper", "scaled", "continuous")
FIRST_STEPS = 6


def box_metrics(checkpoint: Path, data: Path, limit: int | None = None) -> dict:
    """Greedy boxes of a checkpoint on ``data``: mean IoU, acc@0.5, acc@0.75, COCO AP50, and every IoU."""
    from orsta_trl.data.records import load_records
    from orsta_trl.evaluation import evaluate_checkpoint
    from orsta_trl.verifiers.boxes import iou, parse_boxes

    records = load_records([data])[:limit]
    report = evaluate_checkpoint(
        str(checkpoint), records, max_new_tokens=32, batch_size=64, recipe_path=str(RECIPE)
    )
    gold = {r.id: r.raw_reward["ground_truth"][0]["bbox_2d"] for r in records}
    ious = []
    for row in report["completions"]:
        boxes = parse_boxes(row["completion"]).boxes
        ious.append(float(iou(boxes[0][:4], gold[row["id"]])) if len(boxes) == 1 else 0.0)
    (coco,) = report["coco"].values()
    return {"mean_iou": statistics.mean(ious), "acc50": statistics.mean(i >= 0.5 for i in ious),
            "acc75": statistics.mean(i >= 0.75 for i in ious), "ap50": coco["map50"], "ious": ious}  # fmt: skip


def cached(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


def scaled_schedule(ious: list[float]) -> list[list[float]]:
    """The paper's three steps at the 50th / 75th / 90th percentile of the warm-up's IoU, floored to 0.05."""
    q = statistics.quantiles(ious, n=20)  # 5 % steps: q[9] = 50th, q[14] = 75th, q[17] = 90th percentile
    t = [max(0.05, int(v * 20) / 20) for v in (q[9], q[14], q[17])]
    return [[0.0, t[0]], [0.10, max(t[0], t[1])], [0.25, max(t[0], t[1], t[2])]]


def grpo(seed: int, condition: str, schedule, warm: Path, data: Path, work: Path, max_steps: int) -> dict:
    from orsta_trl.api import train
    from orsta_trl.recipe import load_recipe

    out = work / f"run-{seed}-{condition}"
    cpu = time.process_time()
    keys = dict(
        train_files=[str(data)], eval_datasets=[], seed=seed, max_steps=max_steps, output_dir=str(out)
    )
    result = train(load_recipe(RECIPE, model_name_or_path=str(warm), iou_schedule=schedule, **keys))
    log = [e for e in result.trainer.state.log_history if "reward" in e]
    return {"schedule": schedule, "grpo_cpu_s": time.process_time() - cpu,
            "steps": [e["step"] for e in log], "reward": [e["reward"] for e in log],
            "zero_std": [e.get("frac_reward_zero_std") for e in log], "run": str(out)}  # fmt: skip


def run_seed(seed: int, args, work: Path, tiny: Path, held_out: Path) -> dict:
    from orsta_trl.data.synth import synth
    from orsta_trl.recipe import load_recipe
    from orsta_trl.warmup import sft_warmup

    data = synth(work / f"train-{seed}", n=args.n, seed=seed, tasks=["locate"])
    warm = work / f"warm-{seed}"
    if not (warm / "config.json").exists():
        cpu = time.process_time()
        recipe = load_recipe(RECIPE, model_name_or_path=str(tiny), train_files=[str(data)], seed=seed,
                             warmup_sft_steps=args.warmup_steps, freeze_vision=False)  # fmt: skip
        sft_warmup(recipe, warm)
        (warm / "warmup_cpu_s.txt").write_text(f"{time.process_time() - cpu:.1f}\n")
    out = {"warm": cached(work / f"eval-{seed}-warm.json", lambda: box_metrics(warm, held_out))}
    train_ious = cached(work / f"train-ious-{seed}.json", lambda: box_metrics(warm, data, 100)["ious"])
    for condition in args.conditions:
        schedule = scaled_schedule(train_ious) if condition == "scaled" else FIXED[condition]
        run = cached(
            work / f"grpo-{seed}-{condition}.json",
            lambda c=condition, s=schedule: grpo(seed, c, s, warm, data, work, args.max_steps),
        )
        run["held_out"] = cached(
            work / f"eval-{seed}-{condition}.json", lambda r=run: box_metrics(Path(r["run"]), held_out)
        )
        out[condition] = run
        print_tables({seed: out}, [condition], args.eval_n)
    return out


def print_tables(results: dict, conditions, eval_n: int) -> None:
    print(
        f"\nheld-out grounding ({eval_n} records), greedy; zero-spread: share of groups with one reward for all"
    )
    print(f"{'seed':>4} {'condition':<11} {'schedule':<32} {'mIoU':>6} {'@0.5':>6} {'@0.75':>6} {'AP50':>6} "
          f"{'zero-spread 1st ' + str(FIRST_STEPS) + ' steps':>24} {'GRPO CPU s':>10}")  # fmt: skip
    for seed, out in results.items():
        w = out["warm"]
        print(f"{seed:>4} {'warm-up':<11} {'':<32} {w['mean_iou']:>6.3f} {w['acc50']:>6.3f} {w['acc75']:>6.3f} "
              f"{w['ap50']:>6.3f}")  # fmt: skip
        for condition in conditions:
            if condition not in out:
                continue
            r, h = out[condition], out[condition]["held_out"]
            early = [
                z
                for s, z in zip(r["steps"], r["zero_std"], strict=True)
                if s <= FIRST_STEPS and z is not None
            ]
            sched = " ".join(f"{p:g}:{t:g}" for p, t in r["schedule"])
            print(f"{seed:>4} {condition:<11} {sched:<32} {h['mean_iou']:>6.3f} {h['acc50']:>6.3f} "
                  f"{h['acc75']:>6.3f} {h['ap50']:>6.3f} {statistics.mean(early) if early else float('nan'):>24.3f} "
                  f"{r['grpo_cpu_s']:>10.0f}")  # fmt: skip
    print("\ntraining reward per logged step")
    for seed, out in results.items():
        for condition in conditions:
            if condition in out:
                r = out[condition]
                cells = " ".join(f"{s}:{v:.2f}" for s, v in zip(r["steps"], r["reward"], strict=True))
                print(f"{seed:>4} {condition:<11} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--n", type=int, default=2000, help="training records")
    parser.add_argument("--eval-n", type=int, default=100, help="held-out records")
    parser.add_argument("--max-steps", type=int, default=40, help="GRPO steps")
    parser.add_argument("--warmup-steps", type=int, default=3000, help="SFT steps (vision tower trained)")
    parser.add_argument("--out", required=True, help="work folder; finished parts are reused")
    args = parser.parse_args()

    import torch

    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl

    torch.set_num_threads(1)
    work = Path(args.out)
    tiny = work / "tiny-vl"
    if not (tiny / "config.json").exists():
        make_tiny_vl(tiny, min_pixels=3136, max_pixels=50176)
    held_out = synth(work / "eval", n=args.eval_n, seed=1000, tasks=["locate"])
    results = {seed: run_seed(seed, args, work, tiny, held_out) for seed in args.seeds}
    print("\n==== all seeds")
    print_tables(results, args.conditions, args.eval_n)
    print(f"\nno image needed: {constant_box(work / f'train-{args.seeds[0]}' / 'data.jsonl', held_out)}")


def constant_box(train: Path, held_out: Path) -> str:
    """The baseline a model that ignores the image can reach: the mean training box for every held-out record."""
    from orsta_trl.data.records import load_records
    from orsta_trl.verifiers.boxes import iou

    boxes = [r.raw_reward["ground_truth"][0]["bbox_2d"] for r in load_records([train])]
    mean = [statistics.mean(b[i] for b in boxes) for i in range(4)]
    ious = [iou(mean, r.raw_reward["ground_truth"][0]["bbox_2d"]) for r in load_records([held_out])]
    return (f"the mean training box {[round(v) for v in mean]} on every held-out record: mean IoU "
            f"{statistics.mean(ious):.3f}, acc@0.5 {statistics.mean(i >= 0.5 for i in ious):.3f}, "
            f"acc@0.75 {statistics.mean(i >= 0.75 for i in ious):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
