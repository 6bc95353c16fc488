"""Trainer overhead: our OrstaGRPOTrainer against TRL's plain GRPOTrainer, taking turns step by step.

    make bench            # or: .venv/bin/python benchmarks/trainer_overhead.py [--steps 60] [--warmup 6]

Both trainers get the same tiny Qwen2.5-VL (each its own copy, loaded from the same folder), the same rows (the
synthetic V-Triune mix), the same GRPOConfig (``recipes/tiny_cpu.yaml``: batch 8 = 2 prompts x 4 generations,
24 tokens, logging every step to TensorBoard, seed 0) and the same verifiers: TRL's trainer calls our
``RewardRouter`` as a plain reward function (same worker pool), ours calls it through its monitor. The vision
tower is frozen in both. They run in one process, in two threads that pass a baton at every ``on_step_begin``:
only one trains at a time, and a step's time runs from taking the baton to handing it back, so it includes the
optimizer step, logging and callbacks. The first ``--warmup`` steps of each are dropped.

Printed: the median step time of each, the ratio of medians and its spread (the ratio of each pair of
consecutive steps: quartiles), ours with its evaluation steps on their own line, and what each of our additions
costs per step (medians, timed inside the same run): the monitor (per-source metrics, summary), the completion
dumps, the per-source log (TRL's ``log`` with our hundreds of keys, against TRL's own), placeholder filtering,
and the reward call (the same router in both). The machine is shared: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transformers import TrainerCallback  # noqa: E402

TIMES: dict[str, list[float]] = defaultdict(list)


def timed(name: str, fn):
    """``fn`` wrapped to add its wall time to ``TIMES[name]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name].append(time.perf_counter() - start)

    return wrapper


class Baton(TrainerCallback):
    """Hands the turn to the other trainer at every step start; records this trainer's step times."""

    lock = threading.Condition()
    turn = 0
    done = [False, False]

    def __init__(self, me: int):
        self.me, self.start, self.steps = me, None, []

    def _close_step(self, state) -> None:
        if self.start is not None:
            self.steps.append((state.global_step, time.perf_counter() - self.start))

    def on_step_begin(self, args, state, control, **kwargs):
        self._close_step(state)
        cls = Baton
        with cls.lock:
            cls.turn = 1 - self.me
            cls.lock.notify_all()
            cls.lock.wait_for(lambda: cls.turn == self.me or cls.done[1 - self.me])
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs):
        self._close_step(state)
        cls = Baton
        with cls.lock:
            cls.done[self.me] = True
            cls.turn = 1 - self.me
            cls.lock.notify_all()


def build(tmp: Path, steps: int, eval_steps: int):
    from orsta_trl import trainer as trainer_module
    from orsta_trl.api import build_trainer
    from orsta_trl.data.synth import synth
    from orsta_trl.models.tiny import make_tiny_vl
    from orsta_trl.recipe import load_recipe

    model_dir, data = make_tiny_vl(tmp / "tiny"), synth(tmp / "data", n=16)
    eval_data = synth(tmp / "eval", n=2, seed=1)
    recipe = load_recipe(
        REPO / "recipes/tiny_cpu.yaml",
        {
            "model_name_or_path": str(model_dir),
            "train_files": [str(data)],
            "eval_datasets": [str(eval_data)],
            "eval_steps": eval_steps,
            "output_dir": str(tmp / "ours"),
            "max_steps": steps,
            "save_strategy": "no",
            "report_to": ["tensorboard"],
            "logging_steps": 1,
            "use_cpu": True,
            "bf16": False,
        },
    )
    trainer_module.drop_placeholders = timed("placeholder filtering", trainer_module.drop_placeholders)
    ours = build_trainer(recipe)
    if ours.dumper is not None:
        ours.dumper.write = timed("dumps", ours.dumper.write)

    plain = plain_trainer(ours.train_dataset, ours.router, recipe, tmp / "trl")
    plain.reward_funcs[0] = timed("reward call (TRL)", plain.reward_funcs[0])
    ours.reward_funcs[0] = timed("reward call (ours)", ours.reward_funcs[0])
    ours.log = timed("log (ours)", ours.log)
    plain.log = timed("log (TRL)", plain.log)
    return ours, plain


def plain_trainer(dataset, router, recipe, output_dir: Path):
    """TRL's own GRPOTrainer on the recipe's model, args (another output folder), PEFT config and ``dataset``,
    scored by ``router`` called as a plain reward function; vision frozen as in ours."""
    import copy

    from trl import GRPOTrainer, get_peft_config

    from orsta_trl.models.loading import freeze_vision, load_model, load_processor

    def orsta_plain(prompts=None, completions=None, completion_ids=None, **kwargs):
        return router(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)

    name, o = recipe.model.model_name_or_path, recipe.orsta
    args = copy.copy(
        recipe.grpo
    )  # not dataclasses.replace: GRPOConfig's __post_init__ rejects its own output
    args.output_dir = str(output_dir)
    trainer = GRPOTrainer(
        model=load_model(
            name, vision=True, dtype=recipe.model.dtype, attn_implementation=recipe.model.attn_implementation
        ),
        args=args,
        train_dataset=dataset,
        processing_class=load_processor(name, min_pixels=o.min_pixels, max_pixels=o.max_pixels),
        reward_funcs=[orsta_plain],
        peft_config=get_peft_config(recipe.model),
    )
    if o.freeze_vision:
        freeze_vision(trainer.model, freeze_merger=o.freeze_merger)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60, help="steps of each trainer")
    parser.add_argument("--warmup", type=int, default=6, help="first steps of each not counted")
    parser.add_argument("--eval-steps", type=int, default=20, help="our evaluation every N steps")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ours, plain = build(Path(tmp), args.steps, args.eval_steps)
        batons = [Baton(0), Baton(1)]
        ours.add_callback(batons[0])
        plain.add_callback(batons[1])
        threads = [threading.Thread(target=t.train) for t in (ours, plain)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            ours.router.close()
        TIMES["monitor (per-source metrics, summary, dumps)"] = [
            h["monitor/seconds"] for h in ours.state.log_history if "monitor/seconds" in h
        ]
    report(batons, args.warmup, args.eval_steps)


def report(batons, warmup: int, eval_steps: int) -> None:
    ours = {s: t for s, t in batons[0].steps if s > warmup}
    theirs = {s: t for s, t in batons[1].steps if s > warmup}
    eval_at = {s for s in ours if eval_steps and s % eval_steps == 0}
    steady = {s: t for s, t in ours.items() if s not in eval_at and s in theirs}
    pairs = [steady[s] / theirs[s] for s in sorted(steady)]
    q = statistics.quantiles(pairs, n=4)
    mo, mt = statistics.median(steady.values()), statistics.median(theirs.values())
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {len(pairs)} step pairs")
    print(f"  TRL GRPOTrainer          median step {mt * 1000:7.1f} ms")
    print(
        f"  OrstaGRPOTrainer         median step {mo * 1000:7.1f} ms (steady state, evaluation steps excluded)"
    )
    print(
        f"  ratio of medians {mo / mt:.3f} (target <= 1.02); per-pair ratios: median {statistics.median(pairs):.3f},"
        f" quartiles {q[0]:.3f}-{q[2]:.3f}"
    )
    if eval_at:
        extra = statistics.median(ours[s] for s in eval_at) - mo
        print(
            f"  evaluation steps ({len(eval_at)}, every {eval_steps}): +{extra * 1000:.1f} ms each (median), "
            f"{extra / eval_steps * 1000:.2f} ms per step amortised"
        )
    print("  per step, medians (timed inside the same run):")
    for name, values in sorted(TIMES.items()):
        n_per_step = len(values) / max(1, len(batons[0].steps) if "TRL" not in name else len(batons[1].steps))
        print(f"    {name:<36} {statistics.median(values) * 1000:7.3f} ms x {n_per_step:.1f} per step")


if __name__ == "__main__":
    main()
