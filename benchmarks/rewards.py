"""Reward throughput: completions per second per verifier, math against TRL's accuracy_reward, pathological math.

    make bench            # or: .venv/bin/python benchmarks/rewards.py [--n 1024] [--timeout 2]

Prints, in one run:
1. completions/s per verifier on a mixed batch of N completions scored through the router (as in training:
   per-batch de-duplication, isolated verifiers in the worker pool); best of three runs, each with a fresh
   router and pool so that no cache carries over;
2. math, ours against TRL's ``accuracy_reward`` on the same completions, TRL given a gold it can parse
   (``$gold$``): runs alternate (ours, TRL, ours, TRL, ...) and the medians are reported, on the idle machine
   and with two busy-loop processes running; wall-clock completions/s, CPU seconds per completion (ours:
   this process plus the workers' job time), and the number of timeouts, with the shipped limit and the pool
   included (a fresh pool per run that first scores other records, untimed, as a pool that has been training
   would have; TRL likewise runs warm in this process);
3. each pathological input's time to come back as ``timeout``, against the limit plus 1 s.
Every completion has its own reasoning text (a few hundred characters with inline LaTeX), so no two are
identical; answers repeat within a prompt group as they do in GRPO (the correct one, an equivalent form, and
wrong ones).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orsta_trl.data.records import Record, prepare_reward  # noqa: E402
from orsta_trl.rewards import RewardRouter, RewardSettings  # noqa: E402

GROUP = 8  # completions per prompt, as in GRPO


def record(source: str, rid: str, reward: dict, sizes=()) -> Record:
    return Record(rid, source, [], [], prepare_reward(reward), list(sizes))


def reasoning(rng: random.Random) -> str:
    """A few hundred characters of chain of thought with inline LaTeX, like a real completion."""
    steps = []
    for _ in range(rng.randint(4, 9)):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        steps.append(
            rng.choice(
                [
                    f"First, compute ${a} \\times {b} = {a * b}$.",
                    f"Then $\\frac{{{a}}}{{{b}}}$ simplifies, so we keep ${a} + {b} = {a + b}$.",
                    f"Wait, let me re-check: ${a}^2 = {a * a}$, which matches.",
                    f"Subtracting gives ${a} - {b} = {a - b}$, and the remainder is {a % b}.",
                ]
            )
        )
    return " ".join(steps)


def math_problem(rng: random.Random) -> tuple[str, list[str]]:
    """A gold answer and three other answers a policy might give (an equivalent form and two wrong ones)."""
    a, b, n = rng.randint(1, 9), rng.randint(2, 12), rng.randint(10, 999)
    kind = rng.randrange(6)
    if kind == 0:
        return f"\\frac{{{a}}}{{{b}}}", [
            f"{a / b:.6f}".rstrip("0"),
            f"\\frac{{{2 * a}}}{{{2 * b}}}",
            f"\\frac{{{b}}}{{{a}}}",
        ]
    if kind == 1:
        return str(n), [f"{n}.0", str(n + 1), str(n - 10)]
    if kind == 2:
        return f"{a}\\sqrt{{{b}}}", [f"\\sqrt{{{a * a * b}}}", f"{a * b**0.5:.2f}", str(a * b)]
    if kind == 3:
        return f"x^2+{n}", [f"{n}+x^2", f"x^2-{n}", f"x+{n}"]
    if kind == 4:
        return f"-{n}", [f"-{n}", str(n), f"-{n + 1}"]
    return f"{a}\\pi", [f"\\pi \\cdot {a}", f"{a * 3.14159:.5f}", str(a)]


def math_cases(rng: random.Random, n: int, source: str = "math"):
    records, keys, texts = [], [], []
    for i in range(n // GROUP):
        gold, alternatives = math_problem(rng)
        r = record(source, f"m{i}", {"verifier": "math", "ground_truth": gold, "format_weight": 0.1})
        records.append(r)
        for _ in range(GROUP):
            answer = rng.choice([gold, *alternatives])
            keys.append(r.key)
            texts.append(
                f"<think>{reasoning(rng)}</think><answer>The answer is \\boxed{{{answer}}}.</answer>"
            )
    return records, keys, texts


def detection_cases(rng: random.Random, n: int):
    records, keys, texts = [], [], []
    for i in range(n // GROUP):
        boxes = []
        for _ in range(rng.randint(1, 10)):
            x, y = rng.randint(0, 500), rng.randint(0, 400)
            boxes.append(
                {
                    "bbox_2d": [x, y, x + rng.randint(10, 100), y + rng.randint(10, 100)],
                    "label": rng.choice(["cat", "dog", "car"]),
                }
            )
        r = record(
            "det",
            f"d{i}",
            {
                "verifier": "detection",
                "ground_truth": boxes,
                "format_weight": 0.1,
                "params": {"pred_coords": "original"},
            },
            sizes=[(640, 480)],
        )
        records.append(r)
        for _ in range(GROUP):
            pred = [
                {"bbox_2d": [v + rng.randint(-4, 4) for v in b["bbox_2d"]], "label": b["label"]}
                for b in boxes
                if rng.random() < 0.9
            ]
            keys.append(r.key)
            texts.append(f"<think>{rng.random()}</think><answer>{json.dumps(pred)}</answer>")
    return records, keys, texts


DOC = "\n\n".join(f"Paragraph {k} of the report." for k in range(6))
PLAN_STEPS = [
    {"id": "a", "agent": "search", "task": "find", "depends_on": []},
    {"id": "b", "agent": "write", "task": "t", "depends_on": ["a"]},
]
REWRITES = ["low-cost airfare to Paris this May", "budget plane tickets Paris May", "paris flights"]

#: kind -> (reward of every record, a sampler of completions)
SIMPLE = {
    "count": (
        lambda i: {"verifier": "count", "ground_truth": i % 9 + 1},
        lambda rng: f"<think>{rng.random()}</think><answer>{rng.randint(1, 9)}</answer>",
    ),
    "ocr": (
        lambda i: {"verifier": "ocr", "ground_truth": "orsta trl", "params": {"mode": "ned"}},
        lambda rng: f"<answer>orsta {rng.choice(['trl', 'tr1', 'rl'])} {rng.random():.3f}</answer>",
    ),
    "docparse": (
        lambda i: {"verifier": "docparse", "ground_truth": DOC},
        lambda rng: DOC.replace("report", rng.choice(["report", "rapport"])) + f" {rng.random()}",
    ),
    "json": (
        lambda i: {"verifier": "json", "ground_truth": None, "params": {"required_keys": ["query"]}},
        lambda rng: rng.choice(['{"query": "x"}', '{"query": ', "no json"]) + str(rng.random()),
    ),
    "plan": (
        lambda i: {"verifier": "plan", "ground_truth": None},
        lambda rng: json.dumps({"steps": PLAN_STEPS, "note": rng.random()}),
    ),
    "tool": (
        lambda i: {"verifier": "tool", "ground_truth": "42"},
        lambda rng: (
            f'<think>{rng.random()}</think><tool_call>{{"name": "calc"}}</tool_call>'
            f"<tool_response>42</tool_response><answer>\\boxed{{{rng.choice(['42', '41'])}}}</answer>"
        ),
    ),
    "rewrite": (
        lambda i: {"verifier": "rewrite", "ground_truth": "cheap flights to paris in may"},
        lambda rng: json.dumps({"rewritten_query": f"{rng.choice(REWRITES)} {rng.randint(0, 9)}"}),
    ),
}


def simple_cases(rng: random.Random, n: int, kind: str):
    reward, sample = SIMPLE[kind]
    records, keys, texts = [], [], []
    for i in range(n // GROUP):
        r = record(kind, f"{kind}{i}", reward(i))
        records.append(r)
        for _ in range(GROUP):
            keys.append(r.key)
            texts.append(sample(rng))
    return records, keys, texts


def throughput(records, keys, texts, settings, warm_up=None, trials: int = 3) -> float:
    """Best of ``trials`` runs, each with a fresh router and worker pool that first scores ``warm_up`` (another
    set of records, so no answer is cached), as a pool that has been training for a while would be."""
    best = 0.0
    for _ in range(trials):
        router = RewardRouter(records + (warm_up[0] if warm_up else []), settings)
        try:
            router.start()
            if warm_up:
                router.score(router.lookup(warm_up[1]), warm_up[2])
            start = time.perf_counter()
            router.score(router.lookup(keys), texts)
            best = max(best, len(texts) / (time.perf_counter() - start))
        finally:
            router.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1024, help="completions in the mixed batch")
    parser.add_argument("--timeout", type=float, default=2.0, help="reward_timeout_s (CPU seconds per job)")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs of ours and TRL's, each")
    parser.add_argument(
        "--math-only", action="store_true", help="only the math comparison and pathological inputs"
    )
    args = parser.parse_args()
    rng = random.Random(0)
    settings = RewardSettings(reward_timeout_s=args.timeout)
    if not args.math_only:
        per_verifier(rng, args.n, settings)

    # --- math: ours against TRL's accuracy_reward, alternating, idle and under load
    math_records, math_keys, math_texts = math_cases(random.Random(1), args.n)
    for load in (0, 2):
        compare_with_trl(math_records, math_keys, math_texts, settings, load, args.runs)

    # --- pathological inputs: each must come back as a timeout within the limit plus 1 s
    pathological(settings)


def per_verifier(rng: random.Random, n: int, settings) -> None:
    """Completions/s per verifier, then on the shuffled mix of all of them."""
    kinds = ["math", "detection", "count", "ocr", "docparse", "json", "plan", "tool", "rewrite"]
    share = n // len(kinds) // GROUP * GROUP
    print(
        f"machine: {os.cpu_count()} cores; mixed batch of {share * len(kinds)} completions "
        f"({share} per verifier), groups of {GROUP}"
    )
    print(f"{'verifier':<10} {'completions/s':>14}")
    cases = {}
    for kind in kinds:
        if kind == "math":
            cases[kind] = math_cases(rng, share)
        elif kind == "detection":
            cases[kind] = detection_cases(rng, share)
        else:
            cases[kind] = simple_cases(rng, share, kind)
        warm = math_cases(random.Random(99), 256, source="warm_up") if kind in ("math", "tool") else None
        rate = throughput(*cases[kind], settings, warm_up=warm)
        print(f"{kind:<10} {rate:>14,.0f}")

    records = [r for c in cases.values() for r in c[0]]
    keys = [k for c in cases.values() for k in c[1]]
    texts = [t for c in cases.values() for t in c[2]]
    order = list(range(len(texts)))
    rng.shuffle(order)
    mixed = throughput(
        records,
        [keys[i] for i in order],
        [texts[i] for i in order],
        settings,
        warm_up=math_cases(random.Random(99), 256, source="warm_up"),
    )
    print(f"{'mixed':<10} {mixed:>14,.0f}")


def compare_with_trl(records, keys, texts, settings, load: int, runs: int) -> None:
    """Alternate ours and TRL's ``accuracy_reward`` ``runs`` times each; print medians."""
    import statistics

    from trl.rewards import accuracy_reward

    gold_by_key = {r.key: f"${r.reward.gold.text}$" for r in records}  # a gold that math-verify's parse reads
    solutions = [gold_by_key[k] for k in keys]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    warm_records, warm_keys, warm_texts = math_cases(random.Random(99), 256, source="warm_up")
    accuracy_reward(completions[:8], solutions[:8])  # TRL warms up in this process, as during training
    hogs = busy_loops(load)
    ours, theirs = [], []
    try:
        for _ in range(runs):
            router = RewardRouter(records + warm_records, settings)
            router.start()
            try:  # other records first (untimed): a pool that has been training for a while, no answer cached
                router.score(router.lookup(warm_keys), warm_texts)
                done = len(router.pool.job_cpu_s)
                cpu, start = time.process_time(), time.perf_counter()
                scored = router.score(router.lookup(keys), texts)
                wall = time.perf_counter() - start
                cpu = time.process_time() - cpu + sum(router.pool.job_cpu_s[done:])
            finally:
                router.close()
            ours.append((len(texts) / wall, cpu / len(texts), sum(s.reason == "timeout" for s in scored)))
            cpu, start = time.process_time(), time.perf_counter()
            rewards = accuracy_reward(completions, solutions)
            wall = time.perf_counter() - start
            theirs.append((len(texts) / wall, (time.process_time() - cpu) / len(texts), rewards.count(None)))
    finally:
        for hog in hogs:
            hog.kill()

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    ratios = [a[0] / b[0] for a, b in zip(ours, theirs, strict=True)]
    print(
        f"\nmath, {len(texts)} completions, {'idle' if not load else f'{load} busy-loop processes'}, "
        f"{runs} alternating runs each (medians):\n"
        f"  orsta-trl  {med(ours, 0):>7,.0f}/s  {med(ours, 1) * 1000:6.2f} ms CPU/completion  "
        f"timeouts {max(r[2] for r in ours)}\n"
        f"  TRL        {med(theirs, 0):>7,.0f}/s  {med(theirs, 1) * 1000:6.2f} ms CPU/completion  "
        f"unscored (None) {max(r[2] for r in theirs)}\n"
        f"  ratio of wall-clock throughput: median {statistics.median(ratios):.1f}x "
        f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x)"
    )


def busy_loops(n: int) -> list:
    """``n`` processes that spin for at most 10 minutes (the caller kills them sooner)."""
    import subprocess

    code = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    time.sleep(0.5 if n else 0)
    return hogs


def pathological(settings) -> None:
    bad = [r"\dfrac{5^{5^{5^{5^5}}}-4}{3}", r"9^{9^{9^{9^9}}}", r"x^{5^{5^{5^{5}}}}"]
    three = record("math_bad", "b0", {"verifier": "math", "ground_truth": "3"})
    router = RewardRouter([three], settings)
    limit = settings.reward_timeout_s
    try:
        router.start()
        for answer in bad:
            start = time.perf_counter()
            (sample,) = router.score([three], [f"<answer>\\boxed{{{answer}}}</answer>"])
            wall = time.perf_counter() - start
            verdict = "OK" if sample.reason == "timeout" and wall <= limit + 1 else "OVER"
            print(
                f"pathological {answer!r}: {sample.reason} after {wall:.2f}s (limit {limit:g}s + 1s) -> {verdict}"
            )
    finally:
        router.close()


if __name__ == "__main__":
    main()
