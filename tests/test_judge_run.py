"""Judges in the real entry points: a tiny GRPO run through ``orsta_trl/train.py`` rewarded by a judge served
over HTTP on 127.0.0.1, ``orsta-trl score --recipe`` with a local transformers judge, and an unreachable judge
stopping a run before the model loads."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import REPO, scalar_tags, tiny_run, train_cli
from judge_server import JudgeServer
from test_judge import judge_record

import orsta_trl
from orsta_trl.cli import main as cli_main
from orsta_trl.errors import NotReady


def write_records(path, n=8):
    rows = [judge_record(f"c{i}", gold=f"a red square number {i}") for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_judged_run_through_the_entry_point(tiny_lm, sevens_judge, tmp_path):
    """Every third judge request fails (HTTP 503, no retry) and ``judge_failure: skip`` hands those to TRL as
    None; the rest are judged 7/10. The run trains, and the judge's failures and seconds reach TensorBoard."""
    data = write_records(tmp_path / "captions.jsonl")
    out = tmp_path / "run"
    with JudgeServer(sevens_judge, fail=lambda n: n % 3 == 0) as server:
        judges = {
            "tiny": {
                "backend": "openai",
                "url": server.url,
                "model": "tiny-judge",
                "max_new_tokens": 1,
                "retries": 0,
            }
        }
        result = train_cli(
            tiny_run(
                tiny_lm,
                data,
                out,
                max_steps=2,
                save_strategy="no",
                judges=json.dumps(judges),
                judge_failure="skip",
            ),
            tmp_path,
        )
    assert "loaded 8 records" in result.stdout
    assert server.requests >= 3  # the policy's distinct answers, at least one of them failed
    tags = scalar_tags(out)
    assert len(tags["train/source/captions/reward"]) == 2
    assert sum(tags["train/judge/captions/failures"]) > 0
    assert all(v > 0 for v in tags["train/judge/captions/seconds"])
    assert sum(tags["train/source/captions/reason/judge_error"]) > 0
    # a reply always says 7 on 0-10: every judged completion scores 0.7, so the mean over valid replies is 0.7
    valid = tags["train/source/captions/part/judge_valid"]
    scores = tags["train/source/captions/part/judge_score"]
    assert all(s == pytest.approx(0.7 * v) for s, v in zip(scores, valid, strict=True))
    # TRL's own reward leaves the skipped completions out; the monitor counts them as 0
    assert all(
        trl >= ours - 1e-6
        for trl, ours in zip(tags["train/reward"], tags["train/source/captions/reward"], strict=True)
    )


def test_score_command_with_a_judge(sevens_judge, tmp_path, capsys):
    records = write_records(tmp_path / "r.jsonl", n=2)
    lines = [("c0", "<answer>a red square</answer>"), ("c1", ""), ("c0", "a red square")]
    completions = tmp_path / "c.jsonl"
    completions.write_text(
        "".join(json.dumps({"id": i, "data_source": "captions", "completion": c}) + "\n" for i, c in lines)
    )
    recipe = tmp_path / "judge.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "judges": {
                    "tiny": {
                        "backend": "transformers",
                        "model": str(sevens_judge),
                        "device": "cpu",
                        "max_new_tokens": 1,
                    }
                }
            }
        )
    )
    out = tmp_path / "scored.jsonl"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["score", str(records), str(completions), "-o", str(out), "--recipe", str(recipe)])
    assert exit_info.value.code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["verifier"], r["reward"], r["reason"]) for r in rows] == [
        ("judge", pytest.approx(0.7), None),
        ("judge", 0.0, "no_answer"),
        ("judge", pytest.approx(0.7), None),
    ]
    assert rows[0]["parts"] == {"judge_score": pytest.approx(0.7), "judge_valid": 1.0}
    # without the recipe, the records name a judge nobody defined: exit 1, naming file, record and field
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["score", str(records), str(completions), "-o", str(out)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert (
        f"{records}:1: source 'captions', record 'c0', field 'reward.params.judge': unknown judge 'tiny'"
        in err
    )


def test_an_unreachable_judge_stops_the_run_before_the_model_loads(tiny_lm, tmp_path):
    poisoned = tmp_path / "poisoned"
    shutil.copytree(tiny_lm, poisoned)
    (poisoned / "model.safetensors").write_bytes(b"not weights")  # loading this would fail differently
    data = write_records(tmp_path / "captions.jsonl", n=2)
    judges = {"tiny": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 2}}
    run = {
        k: [str(v) for v in val] if isinstance(val, list) else str(val)
        for k, val in tiny_run(poisoned, data, tmp_path / "run").items()
    }
    recipe = orsta_trl.load_recipe(
        str(REPO / "recipes/tiny_cpu.yaml"), {**run, "eval_datasets": []}, judges=judges
    )
    with pytest.raises(NotReady, match="judge 'tiny': cannot reach http://127.0.0.1:9/v1"):
        orsta_trl.build_trainer(recipe)
