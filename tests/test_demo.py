"""The demo that learns: tasks a tiny model can see, the supervised warm-up, and GRPO beating the warm-up."""

from __future__ import annotations

import json

import pytest

from orsta_trl.errors import DataError


def test_easy_tasks_are_deterministic_and_their_reference_answers_score_1(tmp_path):
    import orsta_trl

    tasks = ["colour", "shape", "position", "locate"]
    first = orsta_trl.synth(tmp_path / "a", n=6, seed=3, tasks=tasks)
    again = orsta_trl.synth(tmp_path / "b", n=6, seed=3, tasks=tasks)
    assert first.read_bytes() == again.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert {r["data_source"] for r in rows} == {
        "synth_colour",
        "synth_shape",
        "synth_position",
        "synth_locate",
    }
    assert all((r["extra"]["width"], r["extra"]["height"]) == (112, 112) for r in rows)
    completions = [
        {
            "id": r["id"],
            "data_source": r["data_source"],
            "completion": f"<answer>{r['extra']['answer']}</answer>",
        }
        for r in rows
    ]
    assert [s.reward for s in orsta_trl.score([first], completions)] == [1.0] * len(rows)
    wrong = [{**c, "completion": "<answer>nothing</answer>"} for c in completions]
    assert all(s.accuracy == 0.0 for s in orsta_trl.score([first], wrong))


def test_locate_boxes_are_tight_and_scored_by_iou_at_the_recipes_threshold(tmp_path):
    """The grounding task's box is the drawn shape's pixels; a shifted box scores by the detection verifier."""
    import numpy as np
    from PIL import Image

    import orsta_trl
    from orsta_trl.verifiers.base import RewardSettings
    from orsta_trl.verifiers.boxes import iou

    data = orsta_trl.synth(tmp_path, n=8, seed=5, tasks=["locate"])
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for row in rows:
        (gold,) = row["reward"]["ground_truth"]
        pixels = np.asarray(Image.open(tmp_path / row["images"][0]).convert("RGB")).astype(int)
        background = np.array(row["extra"]["background"])
        ys, xs = np.nonzero(np.abs(pixels - background).sum(-1) > 60)  # the shape, not the light noise
        assert gold["bbox_2d"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert 40 <= gold["bbox_2d"][2] - gold["bbox_2d"][0] <= 64
        assert gold["label"] in row["prompt"][0]["content"][1]["text"]
    x1, y1, x2, y2 = json.loads(rows[0]["extra"]["answer"])[0]["bbox_2d"]
    shifted = [x1 + 6, y1, x2 + 6, y2]
    overlap = iou(shifted, [x1, y1, x2, y2])
    completion = {"id": rows[0]["id"], "data_source": "synth_locate",
                  "completion": f'<answer>[{{"bbox_2d": {shifted}}}]</answer>'}  # fmt: skip
    (hit,) = orsta_trl.score(
        [data], [completion], settings=RewardSettings(iou_schedule=((0.0, overlap - 0.01),))
    )
    assert hit.accuracy == pytest.approx(0.7 * overlap + 0.3)
    (miss,) = orsta_trl.score(
        [data], [completion], settings=RewardSettings(iou_schedule=((0.0, overlap + 0.01),))
    )
    assert miss.accuracy == 0.0 and miss.reward == pytest.approx(0.1 / 1.1)


def test_the_default_task_set_is_unchanged(tmp_path):
    from orsta_trl.data.synth import TASKS, synth

    rows = synth(tmp_path, n=1).read_text().splitlines()
    assert [json.loads(r)["extra"]["task"] for r in rows] == list(TASKS)


def test_warm_up_without_reference_answers_fails_before_the_model_loads(tmp_path, synth_data):
    from orsta_trl.recipe import load_recipe
    from orsta_trl.warmup import sft_warmup

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{not json")  # loading the model would fail differently
    rows = [json.loads(line) for line in synth_data.read_text().splitlines()]
    counting = [r for r in rows if r["extra"]["task"] == "counting"][:1]
    counting[0]["extra"].pop("answer")
    counting[0]["images"] = [str(synth_data.parent / p) for p in counting[0]["images"]]
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(counting[0]) + "\n")
    recipe = load_recipe(
        None, model_name_or_path=str(tmp_path / "model"), train_files=[str(data)], warmup_sft_steps=2,
        use_cpu=True, bf16=False, output_dir=str(tmp_path / "out"),
    )  # fmt: skip
    with pytest.raises(
        DataError, match=r"record 'counting-s0-00000'.*needs a reference answer.*extra.answer"
    ):
        sft_warmup(recipe, tmp_path / "warm")


# The demo's own setting (recipes/demo_cpu.yaml, colour and shape), at seed 0, run for the first 60 of its 90 steps
# and evaluated only before and after: both sources end at least MARGIN above the warm-up. The learning rate is
# constant and the data order does not depend on max_steps, so this is the recipe's own trajectory up to step 60:
# +0.200 / +0.145 here, the same as the step-60 evaluation of the full 90-step run of
# `benchmarks/demo_learning.py --seeds 0` (the 2-core machine of December 2026). One seed, 60 steps: the whole
# run costs about 110 s of CPU (the 90 steps cost 172 s, which put `make test` over 15 minutes). The per-seed
# property over 8 seeds and 90 steps (every seed ends at or above its warm-up; median gains +0.14 and +0.13) is
# benchmarks/demo_learning.py's, with its figures in the README ("Does every seed learn?").
MARGIN = 0.05


def test_grpo_raises_held_out_accuracy_above_the_warm_up(tiny_vl, tmp_path):
    from conftest import REPO

    from orsta_trl.api import train
    from orsta_trl.data.synth import synth
    from orsta_trl.monitor.held_out import held_out_gains
    from orsta_trl.recipe import load_recipe
    from orsta_trl.warmup import sft_warmup

    tasks = ["colour", "shape"]
    data = synth(tmp_path / "train", n=400, seed=0, tasks=tasks)
    held_out = synth(tmp_path / "eval", n=200, seed=1000, tasks=tasks)
    keys = dict(
        train_files=[str(data)],
        eval_datasets=[str(held_out)],
        report_to=[],
        seed=0,
        max_steps=60,
        eval_steps=60,
    )
    recipe = REPO / "recipes/demo_cpu.yaml"
    warm = sft_warmup(load_recipe(recipe, model_name_or_path=str(tiny_vl), **keys), tmp_path / "warm")
    result = train(
        load_recipe(recipe, model_name_or_path=str(warm), output_dir=str(tmp_path / "run"), **keys)
    )
    gains = held_out_gains(result.trainer.source_history)
    assert sorted(gains) == ["synth_colour", "synth_shape"]
    for source, row in gains.items():
        assert (row["first_step"], row["last_step"]) == (0, 60)
        assert row["first"] > 0.35, (source, row)  # the warm-up learned something: GRPO has a signal
        assert row["last"] - row["first"] >= MARGIN, (source, row)
