"""Training through the real entry points, on the tiny Qwen2.5-VL and the CPU.

* two steps via ``python orsta_trl/train.py``: language weights move, the frozen vision tower does not,
  TensorBoard events hold the reward scalars, a checkpoint is written;
* a learning test: a learnable reward rises clearly within 40 steps (the update has the right sign);
* resume: a run resumed from a mid-run checkpoint continues with the same step, schedule and data order;
* two processes with ``accelerate launch`` (gloo on the CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/tiny_cpu.yaml"


def sevens_dataset(folder: Path, n: int = 16) -> Path:
    """Records whose reward (1 - normalised edit distance to 24 sevens) a tiny model can learn in tens of steps."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (84, 56), "white").save(folder / "blank.png")
    rows = [
        {
            "id": f"s{i}",
            "data_source": "sevens",
            "prompt": [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": f"Write sevens {i}"}],
                }
            ],
            "images": ["blank.png"],
            "reward": {"verifier": "ocr", "ground_truth": "7" * 24, "params": {"mode": "ned"}},
        }
        for i in range(n)
    ]
    path = folder / "sevens.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ocr_ned_dataset(synth_data: Path, folder: Path) -> Path:
    """The synthetic OCR records, all scored by edit distance so that random completions get varied rewards."""
    rows = []
    for line in synth_data.read_text().splitlines():
        row = json.loads(line)
        if row["reward"]["verifier"] in ("ocr", "count"):
            if row["reward"]["verifier"] == "ocr":
                row["reward"]["params"] = {"mode": "ned"}
            row["images"] = [str(synth_data.parent / p) for p in row["images"]]
            rows.append(row)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ocr.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_cli(overrides: dict, cwd: Path, launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``orsta_trl/train.py`` on the demo recipe with ``--key value`` overrides; fail with its output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    # the demo's evaluation files are not here, and every step is logged
    overrides = {"eval_datasets": [], "dump_completions": 0, "logging_steps": 1, **overrides}
    args = [item for key, value in overrides.items() for item in (f"--{key}", _flag(value))]
    command = (launcher or [sys.executable]) + [str(REPO / "orsta_trl/train.py"), str(RECIPE), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def _flag(value) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def tiny_run(model: Path, data: Path, out: Path, **overrides) -> dict:
    """Overrides for a run of the tiny model on ``data`` into ``out``."""
    return {"model_name_or_path": model, "train_files": [data], "output_dir": out, **overrides}


def scalar_tags(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, list[float]] = {}
    files = list(run_dir.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {run_dir}"
    for file in files:
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            values.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return values


def test_two_steps_through_the_entry_point(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    out = tmp_path / "run"
    result = train_cli(tiny_run(tiny_vl, data, out, max_steps=2, save_steps=2, learning_rate=1e-2), tmp_path)
    assert "trainable" in result.stdout and "vision tower" in result.stdout
    assert "per-source summary" in result.stdout and "synth_ocr" in result.stdout

    before, after = load_file(tiny_vl / "model.safetensors"), load_file(out / "model.safetensors")
    vision = [k for k in before if k.startswith("visual.") or ".visual." in k]
    language = [k for k in before if ".layers." in k and k not in vision]
    assert vision and language
    assert any(not torch.equal(before[k], after[k]) for k in language), "no language weight moved"
    assert all(torch.equal(before[k], after[k]) for k in vision), "the frozen vision tower moved"

    tags = scalar_tags(out)
    assert len(tags["train/rewards/orsta/mean"]) == 2
    assert len(tags["train/reward/iou_threshold"]) == 2
    assert (out / "checkpoint-2" / "trainer_state.json").exists()


def test_learnable_reward_rises(tiny_vl, tmp_path):
    from orsta_trl.recipe import load_recipe
    from orsta_trl.train import run

    data = sevens_dataset(tmp_path / "data")
    recipe = load_recipe(
        RECIPE,
        {
            "model_name_or_path": str(tiny_vl),
            "train_files": [str(data)],
            "output_dir": str(tmp_path / "run"),
            "max_steps": 40,
            "learning_rate": 1e-2,
            "max_completion_length": 12,
            "num_generations": 8,
            "per_device_train_batch_size": 16,
            "save_strategy": "no",
            "report_to": [],
            "eval_datasets": [],
            "logging_steps": 1,
        },
    )
    result = run(recipe)
    rewards = [h["rewards/orsta/mean"] for h in result.trainer.state.log_history if "rewards/orsta/mean" in h]
    assert len(rewards) == 40
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert first < 0.1 and last > 0.3, f"reward went {first:.3f} -> {last:.3f}"


def test_resume_matches_an_uninterrupted_run(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    common = {
        "learning_rate": 1e-2,
        "save_steps": 2,
        "max_steps": 4,
        "report_to": [],
        "dump_completions": 1.0,
    }
    train_cli(tiny_run(tiny_vl, data, tmp_path / "full", **common), tmp_path)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(
        tmp_path / "full" / "checkpoint-2", resumed / "checkpoint-2"
    )  # as if stopped after step 2
    train_cli(
        tiny_run(tiny_vl, data, resumed, resume_from_checkpoint=resumed / "checkpoint-2", **common), tmp_path
    )

    def history(run):
        return json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]

    full_log, resumed_log = history(tmp_path / "full"), history(resumed)
    assert [h["step"] for h in resumed_log if "loss" in h] == [1, 2, 3, 4]
    # the schedule follows the restored step
    assert [h.get("reward/iou_threshold") for h in resumed_log] == [
        h.get("reward/iou_threshold") for h in full_log
    ]
    # the data order is the same: the completion dumps name the records of every step
    for step in (3, 4):
        name = f"completions/step_{step:07d}.jsonl"
        ids_full = [json.loads(line)["id"] for line in (tmp_path / "full" / name).read_text().splitlines()]
        ids_resumed = [json.loads(line)["id"] for line in (resumed / name).read_text().splitlines()]
        assert ids_full == ids_resumed and ids_full


def test_two_processes_with_accelerate_launch(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    out = tmp_path / "ddp"
    flags = "launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"
    launcher = [
        str(Path(sys.executable).parent / "accelerate"),
        *flags.split(),
        "--main_process_port",
        "29611",
    ]
    result = train_cli(
        tiny_run(tiny_vl, data, out, max_steps=2, save_strategy="no", ddp_backend="gloo"),
        tmp_path,
        launcher=launcher,
    )
    assert "2 process(es), MULTI_CPU" in result.stdout
    tags = scalar_tags(out)
    assert len(tags["train/rewards/orsta/mean"]) == 2
    # per-source values come from the rows of both ranks: each step saw 2 prompts x 4 completions per rank
    for source in ("synth_ocr", "synth_counting"):
        assert f"train/source/{source}/reward" in tags
    summary = result.stdout.split("per-source summary")[1]
    counts = [int(line.split()[1]) for line in summary.splitlines() if line.startswith("synth_")]
    assert sum(counts) == 2 * 2 * 8  # 2 steps x 2 ranks x 8 completions, all in rank 0's table
    assert (out / "model.safetensors").exists()


def test_text_model_with_math_rewards_in_worker_processes(tiny_lm, tmp_path):
    rows = [
        {
            "id": f"q{i}",
            "data_source": "arith",
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "reward": {"verifier": "math", "ground_truth": str(2 * i), "format_weight": 0.5},
        }
        for i in range(8)
    ]
    rows.append(
        {**rows[0], "id": "hard", "reward": {"verifier": "math", "ground_truth": r"\frac{5^{5^{5}}}{3}"}}
    )
    data = tmp_path / "text.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    result = train_cli(
        tiny_run(tiny_lm, data, out, max_steps=2, save_strategy="no", reward_timeout_s=1.0), tmp_path
    )
    assert "loaded 9 records" in result.stdout
    tags = scalar_tags(out)
    assert len(tags["train/source/arith/reward"]) == 2
    assert tags[
        "train/source/arith/reason/no_answer"
    ]  # random text has no \boxed{} answer: counted, scored 0
    assert all(v == 0.0 for v in tags["train/source/arith/accuracy"])
