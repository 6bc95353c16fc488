"""The rollout viewer at scale: file size and load time of ``orsta-trl view`` for 1,000 and 10,000 completions.

A run is synthesised with the real dump writer: synthetic detection records (``orsta_trl.data.synth``, images of
224-448 px per side), groups of 8 completions, 25 prompts per step, each completion a short reasoning text and
1-5 boxes. ``--pool`` records are drawn from, so images repeat across steps as they do in training (the last
line gives every group its own image, the worst case). Figures:

* ``size``: the HTML file (images downscaled once to 320 px and stored once per content hash);
* ``build``: seconds to write it (Python);
* ``render``: milliseconds from navigation start to the end of the first render, measured inside the page
  (``performance.now()``) in a headless Chromium; ``loaded``: the same to the page's ``load`` event (every
  image of the first page decoded);
* ``chromium``: wall-clock seconds of the whole ``chromium --headless --dump-dom`` process on the page, and the
  same for an empty page (browser start-up, which is not the page's).

    .venv/bin/python benchmarks/viewer.py [--sizes 1000 10000] [--pool 400]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orsta_trl.data.records import load_records
from orsta_trl.data.synth import synth
from orsta_trl.monitor.dumps import CompletionDumper, record_entry
from orsta_trl.monitor.viewer import build_view
from orsta_trl.rewards.sample import Sample

GROUP, PROMPTS_PER_STEP = 8, 25
WORDS = "the box sits left of the circle so I will check the edges again before answering".split()


def synth_run(folder: Path, completions: int, pool: int, seed: int = 0) -> Path:
    data = synth(folder / "data", n=pool, seed=seed, tasks=["detection"])
    records = load_records([data])
    by_key = {r.key: r for r in records}
    rng = random.Random(seed)
    run = folder / "run"
    dumper = CompletionDumper(run, 1.0)
    dumper.write_meta(min_pixels=3136, max_pixels=12845056, num_generations=GROUP)
    step, written, cursor = 0, 0, 0
    while written < completions:
        step += 1
        rows, prompts = [], []
        for _ in range(PROMPTS_PER_STEP):
            if written + len(rows) >= completions:
                break
            record = records[cursor % len(records)]
            cursor += 1
            gt = record.raw_reward["ground_truth"]
            for _ in range(GROUP):
                boxes = [
                    {"bbox_2d": [round(v + rng.uniform(-6, 6)) for v in g["bbox_2d"]], "label": g["label"]}
                    for g in gt[: rng.randint(1, max(1, len(gt)))]
                ]
                think = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))
                text = f"<think>{think}</think><answer>{json.dumps(boxes)}</answer>"
                reward = rng.random()
                rows.append(Sample(record.data_source, record.id, "detection", reward, reward, 1.0,
                                   {"ap": reward, "ap50": reward}, None, text, len(text) // 4, rng.random() < 0.05))  # fmt: skip
                prompts.append(json.dumps(record.prompt)[:300])
        advantages = [0.0] * len(rows)
        dumper.write(step, rows, prompts, groups=[i // GROUP for i in range(len(rows))], advantages=advantages,
                     describe=lambda s, i: record_entry(by_key[(s, i)]))  # fmt: skip
        written += len(rows)
    return run


def chromium_seconds(page: Path) -> tuple[float, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    started = time.perf_counter()
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    return time.perf_counter() - started, dom


def measure(completions: int, pool: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = synth_run(folder, completions, pool)
        started = time.perf_counter()
        page = build_view(run).save(folder / "view.html")
        build = time.perf_counter() - started
        empty = folder / "empty.html"
        empty.write_text("<!DOCTYPE html><body>empty</body>")
        renders, loads, walls, blanks = [], [], [], []
        for _ in range(
            repeats
        ):  # alternate the page and an empty page: start-up noise cancels in the medians
            wall, dom = chromium_seconds(page)
            match = re.search(r'data-load-ms="(\d+)"', dom)
            assert match and 'data-rendered="1"' in dom, "the page did not render"
            renders.append(int(match.group(1)))
            loads.append(int(re.search(r'data-loaded-ms="(\d+)"', dom).group(1)))
            walls.append(wall)
            blanks.append(chromium_seconds(empty)[0])
        median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        size = page.stat().st_size / 1e6
        print(
            f"{completions:>6} completions, {pool:>5} records: size {size:5.1f} MB, build {build:5.1f} s, "
            f"render {median(renders):5d} ms (max {max(renders)}), loaded {median(loads):5d} ms (max {max(loads)}), "
            f"chromium {median(walls):4.2f} s "
            f"(empty page {median(blanks):4.2f} s)",
            flush=True,
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000])
    parser.add_argument(
        "--pool", type=int, default=400, help="records drawn from (images repeat across steps)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from orsta_trl.verifiers.boxes import resized_scale

    resized_scale(224, 224, 3136, 12845056)  # imports torch (through qwen_vl_utils) before anything is timed
    for n in args.sizes:
        measure(n, args.pool, args.repeats)
    worst = max(args.sizes)
    measure(worst, -(-worst // GROUP), args.repeats)  # every group its own image
    return 0


if __name__ == "__main__":
    sys.exit(main())
