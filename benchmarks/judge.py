"""What the judge machinery buys: concurrency, de-duplication and the cache, against a real HTTP judge.

    .venv/bin/python benchmarks/judge.py [--prompts 64] [--latency 0.1] [--runs 3]

The judge is the test suite's OpenAI-compatible server (``tests/judge_server.py``) on 127.0.0.1 over the tiny
text LM, sleeping ``--latency`` seconds per request to stand in for a real judge's latency. Printed:

1. one batch of ``--prompts`` distinct answers through the router with ``max_concurrency`` 1 and 8, alternating
   (1, 8, 1, 8, ...), medians of ``--runs`` each: requests per second, their ratio, and the most requests the
   server saw in flight;
2. a GRPO-like batch (8 prompts x 8 identical completions): requests actually sent;
3. the same batch again with ``cache`` on: requests sent and wall time;
4. the ``transformers`` backend (the tiny LM in-process, CPU, batch 16, 8 new tokens): prompts per second.
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
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def records(n: int):
    from orsta_trl.data.records import load_records

    rows = [
        {
            "id": f"q{i}",
            "data_source": "captions",
            "prompt": [{"role": "user", "content": "Describe the image."}],
            "reward": {"verifier": "judge", "ground_truth": f"reference {i}", "params": {"judge": "j"}},
        }
        for i in range(n)
    ]
    return load_records(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from judge_server import JudgeServer

    from orsta_trl.models.tiny import make_tiny_lm
    from orsta_trl.rewards.router import RewardRouter
    from orsta_trl.verifiers.base import RewardSettings

    model = make_tiny_lm(Path(tempfile.mkdtemp(prefix="orsta-judge-")) / "tiny-lm")
    batch = records(args.prompts)

    def openai(url, **keys):
        judge = {"backend": "openai", "url": url, "model": "tiny-judge", "max_new_tokens": 4, **keys}
        return RewardSettings(judges={"j": judge})

    with JudgeServer(model, delay_s=args.latency) as server:
        times: dict[int, list[float]] = {1: [], 8: []}
        in_flight: dict[int, int] = {}
        for run in range(args.runs):
            for concurrency in (1, 8):
                router = RewardRouter(batch, openai(server.url, max_concurrency=concurrency))
                server.max_in_flight = 0
                started = time.perf_counter()
                router.score(batch, [f"answer {run}"] * len(batch))  # a new answer per run: nothing cached
                times[concurrency].append(time.perf_counter() - started)
                in_flight[concurrency] = server.max_in_flight
                router.close()
        rate = {c: args.prompts / statistics.median(t) for c, t in times.items()}
        print(
            f"1. {args.prompts} distinct prompts, {args.latency:g} s per request, medians of {args.runs}: "
            f"max_concurrency 1: {rate[1]:.1f} req/s (max in flight {in_flight[1]}); "
            f"8: {rate[8]:.1f} req/s (max in flight {in_flight[8]}); ratio {rate[8] / rate[1]:.2f}x"
        )

        group = records(8)
        rows = [record for record in group for _ in range(8)]
        texts = [f"the same answer to {record.id}" for record in rows]
        router = RewardRouter(group, openai(server.url, max_concurrency=8, cache=1000))
        before = server.requests
        router.score(rows, texts)
        sent = server.requests - before
        print(f"2. 8 prompts x 8 identical completions (64 scored): {sent} requests sent")
        before, started = server.requests, time.perf_counter()
        router.score(rows, texts)
        print(
            f"3. the same batch again, cache on: {server.requests - before} requests sent, "
            f"{(time.perf_counter() - started) * 1000:.1f} ms"
        )
        router.close()

    settings = RewardSettings(
        judges={
            "j": {
                "backend": "transformers",
                "model": str(model),
                "device": "cpu",
                "batch_size": 16,
                "max_new_tokens": 8,
            }
        }
    )
    router = RewardRouter(batch, settings)
    router.start()
    router.score(batch[:2], ["warm", "up"])
    started = time.perf_counter()
    router.score(batch, [f"answer {i}" for i in range(len(batch))])
    elapsed = time.perf_counter() - started
    router.close()
    print(
        f"4. transformers backend, tiny LM on CPU: {len(batch) / elapsed:.1f} prompts/s (batch 16, 8 new tokens)"
    )


if __name__ == "__main__":
    main()
