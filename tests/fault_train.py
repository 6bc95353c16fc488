"""``orsta_trl/train.py`` with a fault injected at a chosen step, for the reliability tests (never imported by
the package). Run as ``python tests/fault_train.py RECIPE [--key value ...]`` or under ``accelerate launch``.

Faults, chosen by environment variables (each a training step, 1-based):

* ``FAULT_SIGKILL_AT_STEP``: the process SIGKILLs itself right after that step's training log reached the
  loggers (TensorBoard has flushed it), i.e. mid-run, after the checkpoint before it;
* ``FAULT_PAUSE_IN_SAVE_AT_STEP``: while the checkpoint of that step is half-written (model saved, trainer
  state not yet), prints the line :data:`PAUSED` and waits (up to 10 minutes) in a plain sleep, for the test
  to press Ctrl-C as a terminal does (SIGINT to the whole process group: the trainer and its reward workers).
  The test sends it once it has read the line: an event, never a guess at how long the run takes;
* ``FAULT_SERVER=1``: starts a stand-in for a tool or judge server (``python -m http.server`` on loopback, in
  its own session so that a Ctrl-C does not reach it) and registers its stop as a shutdown hook;
* ``FAULT_MODEL_STATES=1``: at the end of training each rank prints ``[model-states] {json}``, the bytes of
  model state it really holds under DeepSpeed: its weights (its ZeRO-3 partitions), the optimizer's fp32
  master partition and AdamW's moments;
* ``FAULT_LOG_TURNS=1``: each rank prints ``[turn] {json}`` (rank, step, prompts) for every generation of its
  own rollouts (the first turn and each tool turn; not the idle generations that keep ranks in lockstep);
* every run dumps the stacks of all its threads to stderr on ``SIGUSR1`` (a watchdog's view of a hang);
* ``FAULT_RAISE_ON_RANK`` (with ``FAULT_RAISE_AT_STEP``, default 1): the reward function of that rank raises
  ``RuntimeError("injected failure on rank N")`` at that step, the other ranks carry on into the collectives.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
from pathlib import Path

faulthandler.register(signal.SIGUSR1, all_threads=True)
# Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the test runner was started as a background job of a
# non-interactive shell (`make test &`): such a job ignores SIGINT, its children inherit that, and Python installs
# no KeyboardInterrupt handler for a signal ignored at startup (the run then waited 10 minutes for a Ctrl-C).
signal.signal(signal.SIGINT, signal.default_int_handler)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import TrainerCallback  # noqa: E402

import orsta_trl.trainer as trainer_module  # noqa: E402
from orsta_trl.train import main  # noqa: E402


def _step(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


class _KillAfterLog(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == self.step and "loss" in (logs or {}):
            os.kill(os.getpid(), signal.SIGKILL)


class _ModelStates(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_end(self, args, state, control, **kwargs):
        import json

        engine = self.trainer.model_wrapped
        zero = engine.optimizer  # DeepSpeed's ZeRO optimizer around torch's AdamW
        weights = sum(
            (p.ds_tensor if hasattr(p, "ds_tensor") else p).numel() * p.element_size()
            for p in engine.module.parameters()
        )
        masters = getattr(zero, "single_partition_of_fp32_groups", None) or zero.fp32_partitioned_groups_flat
        moments = [
            t for s in zero.optimizer.state.values() for k, t in s.items() if k in ("exp_avg", "exp_avg_sq")
        ]
        report = {
            "rank": self.trainer.accelerator.process_index,
            "stage": engine.zero_optimization_stage(),
            "weights": weights,
            "master": sum(t.numel() * t.element_size() for t in masters),
            "moments": sum(t.numel() * t.element_size() for t in moments),
        }
        print(f"[model-states] {json.dumps(report)}", flush=True)


Trainer = trainer_module.OrstaGRPOTrainer
_init, _save_model, _record = Trainer.__init__, Trainer.save_model, Trainer._record_samples
_generate_turn = Trainer._generate_single_turn


def _patched_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    if _step("FAULT_SIGKILL_AT_STEP"):
        self.add_callback(_KillAfterLog(_step("FAULT_SIGKILL_AT_STEP")))
    if os.environ.get("FAULT_MODEL_STATES"):
        self.add_callback(_ModelStates(self))


PAUSED = "[fault] paused in a half-written checkpoint"


def _patched_save_model(self, output_dir=None, _internal_call=False):
    _save_model(self, output_dir, _internal_call)
    if _internal_call and self.state.global_step == _step("FAULT_PAUSE_IN_SAVE_AT_STEP"):
        print(PAUSED, flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # the SIGINT raises KeyboardInterrupt here, in the main thread
            time.sleep(0.05)
        raise RuntimeError("no SIGINT came within 10 minutes")


def _patched_record(self, samples, **kwargs):
    rank, step = _step("FAULT_RAISE_ON_RANK"), _step("FAULT_RAISE_AT_STEP") or 1
    if rank is not None and self.accelerator.process_index == rank and self.state.global_step + 1 == step:
        import time

        print(f"[fault] raising on rank {rank} at {time.time():.3f}", file=sys.stderr, flush=True)
        raise RuntimeError(f"injected failure on rank {rank}")
    return _record(self, samples, **kwargs)


def _logged_turn(self, prompt_ids, *args, **kwargs):
    import json

    turn = {
        "rank": self.accelerator.process_index,
        "step": self.state.global_step + 1,
        "prompts": len(prompt_ids),
    }
    print(f"[turn] {json.dumps(turn)}", flush=True)
    return _generate_turn(self, prompt_ids, *args, **kwargs)


Trainer.__init__, Trainer.save_model, Trainer._record_samples = (
    _patched_init,
    _patched_save_model,
    _patched_record,
)
if os.environ.get("FAULT_LOG_TURNS"):
    Trainer._generate_single_turn = _logged_turn

if __name__ == "__main__":
    if os.environ.get("FAULT_SERVER"):
        import subprocess

        from orsta_trl.rewards.shutdown import on_shutdown

        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"[fault] server pid {server.pid}", flush=True)
        on_shutdown(server.terminate)
    raise SystemExit(main())
