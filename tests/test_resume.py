"""Exact resume after SIGKILL: a run killed mid-way and resumed from its last checkpoint equals a run that was
never interrupted, in everything but wall time.

The killed run is a real subprocess that SIGKILLs itself right after step 5 reached TensorBoard (so the last
checkpoint is step 4 and step 5 must be redone); the uninterrupted and the resumed runs train in this process.
Compared: the global step; per step, the IoU threshold, the record ids, the sampled completions and their
rewards (from the completion dumps); every logged value except timings; the end-of-run summary ("over the
run"); TensorBoard, read as TensorBoard reads a run folder: one run, each step once, the uninterrupted values.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import RECIPE, REPO, ocr_ned_dataset

import orsta_trl
from orsta_trl.monitor.dumps import read_dump

STEPS, EVERY, KILL_AT = 6, 2, 5
TIMING = ("runtime", "per_second", "seconds", "time", "train_loss")  # train_loss: below, exactly


def run_settings(data, out) -> dict:
    return {
        "model_name_or_path": None,  # filled in by the test
        "train_files": [str(data)],
        "output_dir": str(out),
        "max_steps": STEPS,
        "save_steps": EVERY,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "dump_completions": 1.0,
        "eval_datasets": [str(data)],  # greedy evaluation before step 1 and every 3 steps, also logged
        "eval_steps": 3,
        "eval_max_samples": 1,
        "report_to": ["tensorboard"],
    }


def dumped(run) -> dict[int, list[tuple]]:
    return {
        step: [
            (r["id"], r["completion"], r["reward"])
            for r in read_dump(run / f"completions/step_{step:07d}.jsonl")
        ]
        for step in range(1, STEPS + 1)
    }


def logged(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if not any(t in k for t in TIMING)} for h in history]


def tensorboard_run(run) -> dict[str, list[tuple[int, float]]]:
    """The scalars of the run's one log folder, read the way TensorBoard reads it (restarts purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = sorted((run / "runs").iterdir())
    assert len(folders) == 1, f"TensorBoard would show {len(folders)} runs: {folders}"
    acc = EventAccumulator(str(folders[0]), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_run_killed_and_resumed_equals_an_uninterrupted_one(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    settings = {**run_settings(data, full_dir), "model_name_or_path": str(tiny_vl)}
    full = orsta_trl.train(RECIPE, **settings)

    args = [
        f"--{k}={v}" if not isinstance(v, list) else f"--{k}=[{', '.join(v)}]" for k, v in settings.items()
    ]
    args = [a.replace(str(full_dir), str(killed_dir)) for a in args]
    env = {**os.environ, "FAULT_SIGKILL_AT_STEP": str(KILL_AT), "PYTHONPATH": str(REPO)}
    killed = subprocess.run(
        [sys.executable, str(REPO / "tests/fault_train.py"), str(RECIPE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(p.name for p in killed_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (killed_dir / f"completions/step_{KILL_AT:07d}.jsonl").exists()  # step 5 ran, and will run again

    resumed = orsta_trl.train(
        RECIPE, **{**settings, "output_dir": str(killed_dir), "resume_from_checkpoint": True}
    )

    assert resumed.trainer.state.global_step == full.trainer.state.global_step == STEPS
    full_log, resumed_log = full.trainer.state.log_history, resumed.trainer.state.log_history
    assert [h.get("reward/iou_threshold") for h in resumed_log] == [
        h.get("reward/iou_threshold") for h in full_log
    ]
    assert len({h["reward/iou_threshold"] for h in full_log if "reward/iou_threshold" in h}) > 1
    # ids, sampled completions and rewards, step by step
    assert dumped(killed_dir) == dumped(full_dir)
    # every logged value (losses, rewards, per-source metrics), timings aside
    assert logged(resumed_log) == logged(full_log)
    # train_loss, exactly as transformers defines it: the sum of the logged step losses over the steps (GRPO's
    # loss is about 1e-8 here, so only an exact comparison means anything). After a resume, transformers sums
    # only the steps run since the checkpoint (its running total is not saved), which the resumed run must show.
    losses = [h["loss"] for h in full_log if "loss" in h]
    assert len(losses) == STEPS and [h["loss"] for h in resumed_log if "loss" in h] == losses
    assert full_log[-1]["train_loss"] == sum(losses) / STEPS
    assert resumed_log[-1]["train_loss"] == sum(losses[4:]) / STEPS  # resumed from checkpoint-4
    # the summary counts every step, not only those after the resume
    assert resumed.trainer.summary.table() == full.trainer.summary.table()
    assert resumed.trainer.summary.sums == full.trainer.summary.sums
    assert {step for step, _ in resumed.trainer.summary.sums} == set(range(STEPS))
    # TensorBoard: one run, steps 1..6 once each, with the uninterrupted values
    full_tb, resumed_tb = tensorboard_run(full_dir), tensorboard_run(killed_dir)
    for tag in ("train/loss", "train/rewards/orsta/mean", "train/reward/iou_threshold"):
        assert [s for s, _ in resumed_tb[tag]] == list(range(1, STEPS + 1)), tag
        assert resumed_tb[tag] == full_tb[tag], tag
    evals = [tag for tag in full_tb if tag.startswith("eval/source/") and tag.endswith("/reward")]
    assert evals and all(resumed_tb[tag] == full_tb[tag] for tag in evals)
    assert [s for s, _ in resumed_tb[evals[0]]] == [0, 3, 6]
