"""A tiny training run with two data sources and evaluation: per-source training and evaluation tags in the
TensorBoard events, completion dumps that ``orsta-trl score`` reads back, and ``orsta-trl report``'s output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ocr_ned_dataset, scalar_tags, tiny_run, train_cli
from PIL import Image


def test_tags_dumps_and_report(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")  # two sources: synth_ocr and synth_counting
    out = tmp_path / "run"
    overrides = {
        "max_steps": 4,
        "save_strategy": "no",
        "eval_datasets": [data],
        "eval_steps": 2,
        "eval_max_samples": 2,
        "dump_completions": 1.0,
    }
    result = train_cli(tiny_run(tiny_vl, data, out, **overrides), tmp_path)
    assert "evaluation at step 0" in result.stdout and "evaluation at step 4" in result.stdout
    assert "source/synth_ocr" not in result.stdout + result.stderr  # per-source tags stay out of the console

    tags = scalar_tags(out)
    for source in ("synth_ocr", "synth_counting"):
        for metric in (
            "reward",
            "accuracy",
            "format",
            "length/mean",
            "truncated/ratio",
            "reflection/ratio",
            "groups/zero_spread",
            "reason/none",
        ):
            assert f"train/source/{source}/{metric}" in tags, (source, metric)
        assert len(tags[f"eval/source/{source}/reward"]) == 3  # before training, at step 2 and at step 4
    assert "train/monitor/seconds" in tags and "train/reward/iou_threshold" in tags

    dumps = sorted((out / "completions").glob("step_*.jsonl"))
    assert [d.name for d in dumps] == [f"step_{s:07d}.jsonl" for s in (1, 2, 3, 4)]
    rows = [json.loads(line) for line in dumps[0].read_text().splitlines()]
    assert len(rows) == 8 and {"prompt", "completion", "reward", "parts", "reason"} <= set(rows[0])
    for group in {r["group"] for r in rows}:  # GRPO's advantage within the group, as TRL scales it by default
        members = [r for r in rows if r["group"] == group]
        rewards = np.array([r["reward"] for r in members])
        expected = (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-4)
        assert [r["advantage"] for r in members] == pytest.approx(expected.tolist(), abs=1e-6)
    evals = sorted(p.name for p in (out / "completions").glob("eval_step_*.jsonl"))
    assert evals == [f"eval_step_{s:07d}.jsonl" for s in (0, 2, 4)]
    described = [
        json.loads(line) for line in (out / "completions" / "records.jsonl").read_text().splitlines()
    ]
    assert {(r["data_source"], r["id"]) for r in rows} <= {(d["data_source"], d["id"]) for d in described}
    assert all(Path(d["images"][0]).is_file() for d in described)
    rescored = tmp_path / "rescored.jsonl"
    scored = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "score", str(data), str(dumps[0]), "-o", str(rescored)],
        capture_output=True,
        text=True,
    )
    assert scored.returncode == 0, scored.stderr
    again = [json.loads(line) for line in rescored.read_text().splitlines()]
    assert [r["reward"] for r in again] == [r["reward"] for r in rows]  # a dump re-scores to the same rewards

    report = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "report", str(out)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    summary = (out / "report" / "summary.md").read_text()
    assert "synth_ocr" in summary and "synth_counting" in summary and "## eval" in summary
    for source in ("synth_ocr", "synth_counting"):
        with Image.open(out / "report" / f"source_{source}.png") as image:
            assert image.size[0] > 300

    viewer = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "view", str(out)], capture_output=True, text=True
    )
    assert viewer.returncode == 0, viewer.stderr
    page = out / "viewer.html"
    assert str(page.resolve()) in viewer.stdout
    assert (
        "[viewer](../viewer.html)" in summary or "viewer.html" in (out / "report" / "summary.md").read_text()
    )
    from test_viewer import Dom, browse

    dom = Dom(browse(page))  # in Chromium: every dumped completion of both splits, with its image
    summary_attrs = next(a for t, a in dom.tags if a.get("id") == "summary")
    assert int(summary_attrs["data-matching"]) == 4 * 8 + 3 * 4  # 4 steps x 8, 3 evaluations x 2 x 2 sources
    assert dom.cards and sum(1 for t, a in dom.tags if t == "image") == len(dom.cards)


def test_evaluation_does_not_swallow_the_training_log(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    out = tmp_path / "run"
    overrides = {
        "max_steps": 2,
        "save_steps": 2,
        "eval_datasets": [data],
        "eval_steps": 1,
        "eval_max_samples": 1,
    }
    train_cli(tiny_run(tiny_vl, data, out, **overrides), tmp_path)
    history = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    training = [h["step"] for h in history if "rewards/orsta/mean" in h]
    evaluations = [h["step"] for h in history if "eval_source/synth_ocr/reward" in h]
    assert training == [1, 2] and evaluations == [0, 1, 2]
