"""Training through the real entry points, on the tiny Qwen2.5-VL and the CPU.

* two steps via ``python orsta_trl/train.py``: language weights move, the frozen vision tower does not,
  TensorBoard events hold the reward scalars, a checkpoint is written;
* a learning test: a learnable reward rises clearly within 40 steps (the update has the right sign);
* two processes with ``accelerate launch`` (gloo on the CPU).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import RECIPE, ocr_ned_dataset, scalar_tags, sevens_dataset, tiny_run, train_cli
from safetensors.torch import load_file


def test_two_steps_through_the_entry_point(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    out = tmp_path / "run"
    result = train_cli(tiny_run(tiny_vl, data, out, max_steps=2, save_steps=2, learning_rate=1e-2), tmp_path)
    assert "trainable" in result.stdout and "vision tower" in result.stdout
    assert "per-source summary" in result.stdout and "synth_ocr" in result.stdout
    # the console: one compact line per log, no dictionaries, no lone epoch lines, no token warning
    console = result.stdout + result.stderr
    assert re.search(r"^step 1/2  loss -?\d+\.\d{4}  reward \d\.\d{3}  std \d\.\d{3}  accuracy (\S+ \d\.\d{3}  )*synth_ocr \d\.\d{3}",
                     console, re.MULTILINE), console[-3000:]  # fmt: skip
    assert "{'" not in console and "'epoch'" not in console and "PAD/BOS/EOS" not in console
    logged = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged if "loss" in entry] == [1, 2]  # every log in full, in the run
    assert "source/synth_ocr/reward" in logged[0] and "epoch" in logged[0]

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
    import orsta_trl
    from orsta_trl.recipe import load_recipe

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
    result = orsta_trl.train(recipe)
    rewards = [h["rewards/orsta/mean"] for h in result.trainer.state.log_history if "rewards/orsta/mean" in h]
    assert len(rewards) == 40
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert first < 0.1 and last > 0.3, f"reward went {first:.3f} -> {last:.3f}"
    # the API's per-source DataFrame holds the same run, one row per step and source
    frame = result.metrics
    assert list(frame.step) == list(range(1, 41)) and set(frame.split) == {"train"}
    assert set(frame.data_source) == {"sevens"}
    assert list(frame.reward) == pytest.approx(rewards)
    assert result.output_dir == tmp_path / "run" and (result.output_dir / "config.json").exists()


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
    # the random policy never boxes an answer, so the hard record is checked here, through the same workers
    import time

    import orsta_trl

    completions = [
        {"id": "hard", "data_source": "arith", "completion": r"<answer>\boxed{9^{9^{9^{9^9}}}}</answer>"},
        {"id": "hard", "data_source": "arith", "completion": r"<answer>\boxed{\frac{5^{5^{5}}}{3}}</answer>"},
        {"id": "q1", "data_source": "arith", "completion": r"<answer>\boxed{2}</answer>"},
    ]
    start = time.perf_counter()
    samples = orsta_trl.score(data, completions, settings=orsta_trl.RewardSettings(reward_timeout_s=1.0))
    assert [s.reason for s in samples] == ["timeout", None, None]
    assert [s.accuracy for s in samples] == [0.0, 1.0, 1.0]
    assert time.perf_counter() - start < 30  # pool start-up included; the timeout itself took about 1 s
