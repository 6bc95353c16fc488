"""A fixed-seed fuzz campaign over every registered verifier, through the router as in training.

    .venv/bin/python benchmarks/fuzz.py [--cases 10000] [--seed 0] [--timeout 2]

Each case is an adversarial completion (``orsta_trl.verifiers.adversarial``) scored against one record of a
verifier, round robin over the registry. In-process verifiers are timed per case; isolated ones (math, tool)
go to the worker pool in batches, and each job's wall time is read from the pool. Prints the cases, the
exceptions, the values out of [0, 1], the reasons seen, and the slowest case with its time, which must lie
within the limit plus 1 s.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orsta_trl.data.records import Record, prepare_reward  # noqa: E402
from orsta_trl.rewards import RewardRouter, RewardSettings  # noqa: E402
from orsta_trl.verifiers.adversarial import adversarial_completion  # noqa: E402
from orsta_trl.verifiers.registry import REGISTRY  # noqa: E402

PLAN = {"steps": [{"id": "a", "agent": "x", "task": "t", "depends_on": []}]}
REWARDS = {
    "math": {"ground_truth": "x = 1, 2"},
    "count": {"ground_truth": 7},
    "ocr": {"ground_truth": "stop", "params": {"mode": "ned"}},
    "detection": {"ground_truth": [{"bbox_2d": [10, 10, 50, 50], "label": "a"}]},
    "docparse": {"ground_truth": "# T\n\nA paragraph."},
    "json": {"ground_truth": None, "params": {"required_keys": ["q"]}},
    "rewrite": {"ground_truth": "cheap flights to paris"},
    "tool": {"ground_truth": "4"},
    "plan": {"ground_truth": PLAN},
    "judge": {"ground_truth": "a red square", "params": {"judge": "tiny"}},  # the tiny text LM as the judge
}


def out_of_range(sample) -> bool:
    values = [sample.reward, sample.accuracy, sample.format, *sample.parts.values()]
    return any(not (isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0) for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=2.0, help="reward_timeout_s (CPU seconds per job)")
    args = parser.parse_args()
    assert set(REWARDS) == set(REGISTRY), "every registered verifier needs a fuzz record"
    rng = random.Random(args.seed)
    records = {
        name: Record(
            f"{name}0", f"fuzz_{name}", [], [], prepare_reward({"verifier": name, **raw}), [(640, 480)]
        )
        for name, raw in REWARDS.items()
    }
    from orsta_trl.models.tiny import make_tiny_lm

    judge = make_tiny_lm(Path(tempfile.mkdtemp(prefix="orsta-fuzz-")) / "tiny-lm")
    judges = {"tiny": {"backend": "transformers", "model": str(judge), "device": "cpu", "max_new_tokens": 4}}
    router = RewardRouter(records.values(), RewardSettings(reward_timeout_s=args.timeout, judges=judges))
    names = sorted(REWARDS)
    cases: dict[str, list[tuple[str, str]]] = {name: [] for name in names}
    for i in range(args.cases):
        cases[names[i % len(names)]].append(adversarial_completion(rng))
    exceptions, bad, reasons, slowest = [], 0, Counter(), (0.0, "", "", "")
    started = time.perf_counter()
    try:
        router.start()
        warm = '<answer>[{"bbox_2d": [10, 10, 50, 50], "label": "a"}] \\boxed{1}</answer>'
        router.score(list(records.values()), [warm] * len(records))  # lazy imports (scipy), the embedder
        for name in names:
            began = time.perf_counter()
            record, isolated = records[name], REGISTRY[name].isolated
            batches = (
                [cases[name][i : i + 128] for i in range(0, len(cases[name]), 128)]
                if isolated
                else [[case] for case in cases[name]]
            )
            for batch in batches:
                done = len(router.pool.job_wall_s) if isolated else 0
                start = time.perf_counter()
                try:
                    samples = router.score([record] * len(batch), [text for _, text in batch])
                except Exception as exc:  # the router must never raise on a completion: count it
                    exceptions.append((name, batch[0][0], repr(exc)[:200]))
                    continue
                wall = time.perf_counter() - start
                if isolated:
                    walls = router.pool.job_wall_s[done:]
                    wall = max(walls, default=0.0)
                for (kind, text), sample in zip(batch, samples, strict=True):
                    if (sample.reason or "").startswith(
                        "verifier_error"
                    ):  # the router caught a verifier raising
                        exceptions.append((name, kind, sample.reason, text[:80]))
                    bad += out_of_range(sample)
                    reasons[(name, sample.reason or "none")] += 1
                if wall > slowest[0]:
                    slowest = (
                        wall,
                        name,
                        batch[0][0] if not isolated else "(slowest pooled job)",
                        batch[0][1][:60],
                    )
            print(f"  {name:<10} {len(cases[name])} cases in {time.perf_counter() - began:.1f}s", flush=True)
    finally:
        router.close()
    print(f"cases {args.cases} over {len(names)} verifiers, seed {args.seed}, limit {args.timeout:g}s of CPU")
    print(f"exceptions {len(exceptions)}; out-of-range values {bad}")
    for item in exceptions[:10]:
        print("  exception:", item)
    print(
        f"slowest case: {slowest[1]} {slowest[2]} {slowest[0]:.2f}s (limit + 1 s = {args.timeout + 1:.1f}s) -> "
        f"{'OK' if slowest[0] <= args.timeout + 1 else 'OVER'}"
    )
    print(f"wall time {time.perf_counter() - started:.1f}s; reasons:")
    for name in names:
        seen = ", ".join(f"{r}={n}" for (v, r), n in sorted(reasons.items()) if v == name)
        print(f"  {name:<10} {seen}")


if __name__ == "__main__":
    main()
