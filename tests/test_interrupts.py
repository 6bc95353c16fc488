"""Quiet, clean stops: Ctrl-C during training, a failing rank, a checkpoint whose writing was interrupted.

Real processes throughout: the trainer runs as a subprocess (``tests/fault_train.py`` injects the fault), Ctrl-C
is a SIGINT to its whole process group as a terminal sends it, and leftovers are looked for with psutil by an
environment marker that every child process inherits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import RECIPE, REPO, free_port

import orsta_trl
from orsta_trl.api import check_paths
from orsta_trl.errors import RecipeError
from orsta_trl.models.checkpoint import last_complete_checkpoint


def math_data(folder: Path) -> Path:
    rows = [
        {
            "id": f"q{i}",
            "data_source": "arith",
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "reward": {"verifier": "math", "ground_truth": str(2 * i)},
        }
        for i in range(8)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fault_run(settings: dict, env: dict, launcher=(), timeout=300) -> subprocess.CompletedProcess:
    args = [f"--{k}={v}" for k, v in settings.items()]
    return subprocess.run(
        [
            *launcher,
            *([] if launcher else [sys.executable]),
            str(REPO / "tests/fault_train.py"),
            str(RECIPE),
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **env},
        timeout=timeout,
        start_new_session=True,  # its own process group: the SIGINT of the test reaches only the run
    )


def ctrl_c_when_paused(settings: dict, env: dict, timeout=600) -> subprocess.CompletedProcess:
    """Run ``fault_train.py`` until it prints that it paused in a half-written checkpoint, then press Ctrl-C:
    SIGINT to its process group, as a terminal does. Waits for that line, however slow the machine."""
    args = [sys.executable, str(REPO / "tests/fault_train.py"), str(RECIPE)]
    args += [f"--{k}={v}" for k, v in settings.items()]
    # started as from a test runner that is a background job (SIGINT ignored, inherited): fault_train.py must
    # still get Ctrl-C, as under a terminal
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    with tempfile.TemporaryFile("w+") as stderr:
        try:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **env},
                start_new_session=True,  # its own process group: the SIGINT of the test reaches only the run
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        # a run that never pauses fails the test, never hangs it
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("[fault] paused in a half-written checkpoint"):
                    os.killpg(proc.pid, signal.SIGINT)
            proc.wait()
        finally:
            timer.cancel()
        stderr.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, "".join(lines), stderr.read())


def survivors(marker: str, wait_s: float = 10.0) -> list[psutil.Process]:
    """Processes still alive that inherited ``FAULT_MARKER=marker``, after up to ``wait_s`` for them to exit."""
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("FAULT_MARKER") == marker and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_ctrl_c_keeps_no_half_written_checkpoint_and_stops_workers_and_servers(tiny_lm, tmp_path):
    out, marker = tmp_path / "run", uuid.uuid4().hex
    settings = {
        "model_name_or_path": tiny_lm,
        "train_files": f"[{math_data(tmp_path / 'data')}]",
        "output_dir": out,
        "max_steps": 4,
        "save_steps": 2,
        "report_to": "[]",
        "eval_datasets": "[]",
        "dump_completions": 0,
        "reward_workers": 2,
    }
    env = {"FAULT_PAUSE_IN_SAVE_AT_STEP": "2", "FAULT_MARKER": marker, "FAULT_SERVER": "1"}
    run = ctrl_c_when_paused(settings, env)
    assert run.returncode == 130, run.stdout[-2000:] + run.stderr[-4000:]
    assert "interrupted (Ctrl-C)" in run.stderr and "Traceback" not in run.stderr, run.stderr[-4000:]
    assert "reward worker(s)" in run.stdout  # the pool was running when the SIGINT came
    server = int(run.stdout.split("[fault] server pid ")[1].split()[0])
    # the model of checkpoint-2 was written when Ctrl-C came: the half-written folder is gone, no final model
    assert not (out / "checkpoint-2").exists() and not (out / "model.safetensors").exists()
    assert last_complete_checkpoint(out) is None
    # no reward worker, forkserver or server outlives the run
    left = survivors(marker)
    assert not left, [(p.pid, p.name(), p.cmdline()[:4]) for p in left]
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE


def test_resume_takes_the_last_complete_checkpoint(tmp_path, tiny_vl, synth_data):
    for step, complete in ((2, True), (4, True), (6, False)):  # checkpoint-6: killed while being written
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    base = {"model_name_or_path": str(tiny_vl), "train_files": [str(synth_data)], "output_dir": str(tmp_path)}
    recipe = orsta_trl.load_recipe(None, **base, resume_from_checkpoint=True, use_cpu=True, bf16=False)
    check_paths(recipe)
    assert recipe.grpo.resume_from_checkpoint == str(tmp_path / "checkpoint-4")
    recipe = orsta_trl.load_recipe(
        None, **base, resume_from_checkpoint=str(tmp_path / "checkpoint-6"), use_cpu=True, bf16=False
    )
    with pytest.raises(RecipeError, match="checkpoint-6 is incomplete"):
        check_paths(recipe)


def test_a_failing_rank_stops_the_other_with_its_error_shown(tiny_vl, synth_data, tmp_path):
    """Under DeepSpeed ZeRO-3 (the path users launch; the launcher's failure handling is torchrun's, as for
    DDP): rank 1 raises at step 1 while rank 0 waits in a collective."""
    from conftest import ocr_ned_dataset
    from test_deepspeed import accelerate, launch_env

    marker = uuid.uuid4().hex
    settings = {
        "model_name_or_path": tiny_vl,
        "train_files": f"[{ocr_ned_dataset(synth_data, tmp_path / 'data')}]",
        "output_dir": tmp_path / "ddp",
        "max_steps": 3,
        "save_strategy": "no",
        "report_to": "[]",
        "eval_datasets": "[]",
        "dump_completions": 0,
    }
    launcher = accelerate("zero3.yaml", "--main_process_port", str(free_port()))
    run = fault_run(
        settings,
        {**launch_env(), "FAULT_RAISE_ON_RANK": "1", "FAULT_MARKER": marker},
        launcher=launcher,
        timeout=600,
    )
    raised = float(run.stderr.split("[fault] raising on rank 1 at ")[1].split()[0])
    elapsed = time.time() - raised  # from the failure to the end of the whole launch
    assert run.returncode != 0
    # the launcher stopped rank 0 and names rank 1's error as the root cause
    root = run.stderr.split("Root Cause (first observed failure)")[-1]
    assert "2 process(es), DEEPSPEED" in run.stdout, run.stdout[-3000:]
    assert "rank      : 1" in root and "injected failure on rank 1" in root, run.stderr[-4000:]
    assert elapsed < 120, f"the other rank hung for {elapsed:.0f} s after the failure"
    left = survivors(marker)
    assert not left, [(p.pid, p.name(), p.cmdline()[:4]) for p in left]


def test_shutdown_hooks_run_last_first_once_and_survive_a_failing_one(capsys):
    from orsta_trl.rewards.shutdown import on_shutdown, run_shutdown_hooks

    ran = []
    on_shutdown(lambda: ran.append("first"))

    @on_shutdown
    def broken():
        raise OSError("server already gone")

    on_shutdown(lambda: ran.append("last"))
    assert run_shutdown_hooks() == 3
    assert ran == ["last", "first"]
    assert "shutdown hook 'broken' failed: server already gone" in capsys.readouterr().err
    assert run_shutdown_hooks() == 0 and ran == ["last", "first"]
