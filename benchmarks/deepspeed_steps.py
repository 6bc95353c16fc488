"""Seconds per GRPO step on 2 CPU ranks: DDP against DeepSpeed ZeRO-2 and ZeRO-3 (the shipped accelerate
configs, with only what a CPU needs overridden), the tiny Qwen2.5-VL, launches alternated A B C A B C.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/deepspeed_steps.py [--rounds 2] [--steps 8]

Per launch the TensorBoard ``train/step_time`` of every step but the first (warm-up); per mode the median over
all rounds, and its ratio to DDP. Needs the ``deepspeed`` extra, ninja and g++ (``make setup``).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CPU = ["--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no"]


def port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def launcher(mode: str) -> list[str]:
    if mode == "ddp":
        flags = ["--multi_gpu", "--num_machines", "1", *CPU]
    else:
        flags = ["--config_file", str(REPO / f"recipes/accelerate/{mode}.yaml"), *CPU]
    return [str(BIN / "accelerate"), "launch", *flags, "--main_process_port", port()]


def step_times(run_dir: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (folder,) = list((run_dir / "runs").iterdir())
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.value for e in acc.Scalars("train/step_time")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl

    work = Path(tempfile.mkdtemp(prefix="ds_steps_"))
    model = make_tiny_vl(work / "tiny-vl", min_pixels=3136, max_pixels=50176)
    data = synth(work / "synth", n=8, seed=0)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    times: dict[str, list[float]] = {"ddp": [], "zero2": [], "zero3": []}
    for r in range(args.rounds):
        for mode in times:
            out = work / f"{mode}-{r}"
            extra = ["--ddp_backend", "gloo"] if mode == "ddp" else []
            command = [
                *launcher(mode),
                str(REPO / "orsta_trl/train.py"),
                str(REPO / "recipes/tiny_cpu.yaml"),
                *("--model_name_or_path", str(model), "--train_files", f"[{data}]", "--output_dir", str(out)),
                *("--eval_datasets", "[]", "--dump_completions", "0", "--logging_steps", "1"),
                *("--max_steps", str(args.steps), "--save_strategy", "no", *extra),
            ]
            result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
            if result.returncode:
                sys.exit(f"{mode} failed:\n{result.stderr[-3000:]}")
            steps = step_times(out)[1:]
            times[mode] += steps
            print(
                f"round {r} {mode:6} median {statistics.median(steps):.3f} s/step over {len(steps)} steps",
                flush=True,
            )
    base = statistics.median(times["ddp"])
    print(
        f"\n2 CPU ranks, tiny Qwen2.5-VL, {args.rounds} rounds x {args.steps - 1} timed steps (median s/step)"
    )
    for mode, values in times.items():
        median = statistics.median(values)
        print(f"{mode:6} {median:.3f} s/step  x{median / base:.2f} of DDP")


if __name__ == "__main__":
    main()
