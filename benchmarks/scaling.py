"""Reward scaling: detection at 10/50/200/1,000 boxes, math at batch 64/512/4,096, each against a peer.

    make bench            # or: .venv/bin/python benchmarks/scaling.py [--runs 3] [--skip-math]

Prints:
1. detection, ours: CPU ms per completion and CPU us per box at 10, 50, 200 and 1,000 ground-truth boxes per
   completion (one core, in this process, ``DetectionVerifier.score`` on prepared golds; medians over runs),
   and the targets: per-box cost at 1,000 within 2x of that at 10, and 1,000 boxes <= 20 ms;
2. detection, V-Triune's reward server re-implemented as a cost model (``benchmarks/peer_vtriune.py`` says what it
   mirrors): at 10 and 50 boxes per completion, and on 1,024 completions of 1-10 boxes (the mix of
   ``benchmarks/rewards.py``) with ours through the router as in training; ratios of throughput. Their global
   greedy matcher rescans every unmatched pair per match (cubic), so 200 boxes are timed on one completion and
   1,000 are not run;
3. math through the router (worker pool, per-batch de-duplication) against TRL's ``accuracy_reward`` at batch
   sizes 64, 512 and 4,096 (TRL given ``$gold$``), alternating runs, medians of wall-clock throughput.

Scenes: ground-truth boxes 10-100 px in a 1280x960 image (5 labels); the completion keeps 90 % of them, each
jittered by up to 4 px, shuffled. Box counts count ground truth; predictions are about 0.9x as many.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from peer_vtriune import vtriune_detection_reward  # noqa: E402
from rewards import GROUP, detection_cases, math_cases  # noqa: E402

from orsta_trl.rewards import RewardRouter, RewardSettings  # noqa: E402
from orsta_trl.verifiers.base import Context  # noqa: E402
from orsta_trl.verifiers.detection import DetectionVerifier  # noqa: E402

LABELS = ["cat", "dog", "car", "person", "cup"]


def scene(rng: random.Random, n: int, width: int = 1280, height: int = 960) -> tuple[list, str]:
    """``n`` ground-truth boxes and a completion that finds 90 % of them, jittered."""
    gt = []
    for _ in range(n):
        x, y = rng.randint(0, width - 100), rng.randint(0, height - 100)
        box = [x, y, x + rng.randint(10, 100), y + rng.randint(10, 100)]
        gt.append({"bbox_2d": box, "label": rng.choice(LABELS)})
    pred = [
        {"bbox_2d": [v + rng.randint(-4, 4) for v in b["bbox_2d"]], "label": b["label"]}
        for b in gt
        if rng.random() < 0.9
    ]
    rng.shuffle(pred)
    return gt, f"<think>{rng.random()}</think>\n<answer>\n{json.dumps(pred)}\n</answer>"


def ours_cpu_per_completion(cases, runs: int) -> float:
    verifier, ctx = DetectionVerifier(), Context()
    params = verifier.parse_params({"pred_coords": "original"})
    golds = [(verifier.prepare(gt, params), text) for gt, text in cases]
    verifier.score(golds[0][1], golds[0][0], params, ctx)  # lazy imports, first-call caches
    times = []
    for _ in range(runs):
        start = time.process_time()
        for gold, text in golds:
            verifier.score(text, gold, params, ctx)
        times.append((time.process_time() - start) / len(golds))
    return statistics.median(times)


def theirs_cpu_per_completion(cases, runs: int) -> float:
    solutions = [f"<answer>{json.dumps(gt)}</answer>" for gt, _ in cases]
    times = []
    for _ in range(runs):
        start = time.process_time()
        for (_, text), solution in zip(cases, solutions, strict=True):
            vtriune_detection_reward(text, solution)
        times.append((time.process_time() - start) / len(cases))
    return statistics.median(times)


def detection_scaling(runs: int) -> None:
    rng = random.Random(0)
    print("detection, ours: one core, CPU time per completion (median of runs)")
    per_box = {}
    for n in (10, 50, 200, 1000):
        cases = [scene(rng, n) for _ in range(max(8, 2000 // n))]
        cost = ours_cpu_per_completion(cases, runs)
        per_box[n] = cost / n
        print(f"  {n:>5} boxes  {cost * 1000:8.2f} ms/completion  {cost / n * 1e6:6.1f} us/box")
    growth = per_box[1000] / per_box[10]
    print(
        f"  per-box cost at 1,000 / at 10: {growth:.2f}x (target <= 2x: {'met' if growth <= 2 else 'NOT met'}); "
        f"1,000 boxes {per_box[1000] * 1000 * 1000:.1f} ms "
        f"(target <= 20 ms: {'met' if per_box[1000] * 1000 <= 0.020 else 'NOT met'})"
    )
    print("\ndetection, ours against V-Triune's reward server (cost model), CPU time per completion")
    for n, count in ((10, 32), (50, 4), (200, 1)):
        cases = [scene(rng, n) for _ in range(count)]
        mine, theirs = ours_cpu_per_completion(cases, runs), theirs_cpu_per_completion(cases, 1)
        print(
            f"  {n:>5} boxes  ours {mine * 1000:8.2f} ms  V-Triune {theirs * 1000:9.1f} ms  "
            f"ratio {theirs / mine:7.1f}x"
        )
    print("   1000 boxes  V-Triune not run: its global greedy matcher is cubic in the boxes (11 thresholds)")


def detection_mix(runs: int) -> None:
    """1,024 completions of 1-10 boxes: ours through the router against V-Triune's per-request server."""
    records, keys, texts = detection_cases(random.Random(1), 1024)
    solution = {
        r.key: "<answer>"
        + json.dumps(
            [
                {"bbox_2d": list(b), "label": lab}
                for b, lab in zip(r.reward.gold.boxes.tolist(), r.reward.gold.labels, strict=True)
            ]
        )
        + "</answer>"
        for r in records
    }
    wrapped = [t.replace("<answer>", "\n<answer>\n").replace("</answer>", "\n</answer>") for t in texts]
    ours, theirs = [], []
    for _ in range(runs):
        router = RewardRouter(records, RewardSettings())
        router.start()
        try:
            router.score(router.lookup(keys[:64]), texts[:64])  # imports, pool start
            start = time.perf_counter()
            router.score(router.lookup(keys), texts)
            ours.append(len(texts) / (time.perf_counter() - start))
        finally:
            router.close()
        start = time.perf_counter()
        for key, text in zip(keys, wrapped, strict=True):
            vtriune_detection_reward(text, solution[key])
        theirs.append(len(texts) / (time.perf_counter() - start))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    print(
        f"\ndetection, {len(texts)} completions of 1-10 boxes, {runs} alternating runs (medians): "
        f"ours {statistics.median(ours):,.0f}/s, V-Triune {statistics.median(theirs):,.0f}/s, "
        f"ratio {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max {max(ratios):.1f}x)"
    )


def math_scaling(runs: int) -> None:
    from trl.rewards import accuracy_reward

    print(f"\nmath through the router against TRL's accuracy_reward, {runs} alternating runs (medians)")
    settings = RewardSettings()
    warm = math_cases(random.Random(99), 256, source="warm_up")
    for batch in (64, 512, 4096):
        records, keys, texts = math_cases(random.Random(batch), batch)
        gold = {r.key: f"${r.reward.gold.text}$" for r in records}
        solutions = [gold[k] for k in keys]
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        accuracy_reward(completions[:GROUP], solutions[:GROUP])
        ours, theirs = [], []
        for _ in range(runs):
            router = RewardRouter(records + warm[0], settings)
            router.start()
            try:
                router.score(router.lookup(warm[1]), warm[2])
                start = time.perf_counter()
                router.score(router.lookup(keys), texts)
                ours.append(time.perf_counter() - start)
            finally:
                router.close()
            start = time.perf_counter()
            accuracy_reward(completions, solutions)
            theirs.append(time.perf_counter() - start)
        mine, trl = statistics.median(ours), statistics.median(theirs)
        print(
            f"  batch {batch:>5}  ours {mine / batch * 1000:6.2f} ms/completion ({batch / mine:7,.0f}/s)  "
            f"TRL {trl / batch * 1000:6.2f} ms/completion ({batch / trl:7,.0f}/s)  ratio {trl / mine:4.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument("--skip-math", action="store_true", help="detection only")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    detection_scaling(args.runs)
    detection_mix(args.runs)
    if not args.skip_math:
        math_scaling(args.runs)


if __name__ == "__main__":
    main()
