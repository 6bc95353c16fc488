"""The difficulty filter with the tiny VL model on CPU: k samples per record through the training router,
stats in ``extra``, the ``--keep`` range, and a resume from the cache after an interrupted run."""

from __future__ import annotations

import json

import pytest

from orsta_trl.cli import main
from orsta_trl.data.records import load_records
from orsta_trl.difficulty import filter_difficulty, parse_keep, record_stats
from orsta_trl.errors import DataError


def test_keep_expressions_parse_without_eval():
    rule = parse_keep("0 <= pass < 1")
    assert rule.metric == "pass_rate"
    assert [rule({"pass_rate": x}) for x in (0.0, 0.5, 1.0)] == [True, True, False]
    det = parse_keep("2 <= reward_sum <= 10")
    assert [det({"reward_sum": x}) for x in (1.9, 2.0, 10.0, 10.5)] == [False, True, True, False]
    assert parse_keep("mean_reward > 0.25")({"mean_reward": 0.3})
    for bad in ("__import__('os')", "pass", "0 <= speed < 1", "1 < pass < 2 < 3", ""):
        with pytest.raises(DataError, match="--keep"):
            parse_keep(bad)
    stats = record_stats([1.0, 0.5, 1.0, 0.0], [0.9, 0.5, 1.0, 0.0], correct_threshold=1.0)
    assert stats == {"pass_rate": 0.5, "mean_reward": 0.6, "reward_sum": 2.4}


def test_difficulty_on_tiny_vl_resumes_from_cache(tiny_vl, synth_data, tmp_path, capsys):
    src = tmp_path / "some.jsonl"  # 8 synthetic records of several verifiers, images by absolute path
    rows = [json.loads(line) for line in synth_data.read_text().splitlines()][::3][:8]
    for row in rows:
        row["images"] = [str(synth_data.parent / p) for p in row["images"]]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    total = len(load_records(src))
    out = tmp_path / "a" / "kept.jsonl"
    args = ["filter", "difficulty", src, out, "--model", tiny_vl, "--k", "2", "--keep", "pass < 2",
            "--max-new-tokens", "4", "--batch-size", "4", "--iou", "0.5"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    assert exit_info.value.code == 0
    printed = capsys.readouterr()
    assert f"{total} record(s) generated, 0 taken from the cache" in printed.out
    assert "difficulty:" in printed.err  # the tqdm bar (with its time estimate)
    kept = load_records(out)
    assert len(kept) == total  # "pass < 2" keeps everything
    for record in kept:
        stats = record.extra
        assert 0 <= stats["pass_rate"] <= 1 and stats["reward_sum"] == pytest.approx(2 * stats["mean_reward"])
    # an interrupted run: the cache holds the first batch and half a line
    cache = tmp_path / "a" / "kept.jsonl.cache.jsonl"
    lines = cache.read_text().splitlines()
    assert len(lines) == total
    partial = tmp_path / "b" / "kept.jsonl"
    partial.parent.mkdir()
    (tmp_path / "b" / "kept.jsonl.cache.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])
    report = filter_difficulty(src, partial, model=str(tiny_vl), k=2, keep="pass < 2", max_new_tokens=4,
                               batch_size=4, iou=0.5, show_progress=False)  # fmt: skip
    assert (report.cached, report.generated) == (4, total - 4)
    assert [r.extra for r in load_records(partial)] == [
        r.extra for r in kept
    ]  # same samples as a straight run
    # a keep range that drops records, on the cached stats (no generation)
    best = max(r.extra["mean_reward"] for r in kept)
    report = filter_difficulty(src, tmp_path / "a" / "kept.jsonl", model=str(tiny_vl), k=2, max_new_tokens=4,
                               batch_size=4, iou=0.5, keep=f"mean_reward < {best}", show_progress=False)  # fmt: skip
    assert report.generated == 0 and sum(report.dropped.values()) >= 1
    assert all(r.extra["mean_reward"] < best for r in load_records(tmp_path / "a" / "kept.jsonl"))
    assert json.loads(lines[0])["stats"].keys() == {"pass_rate", "mean_reward", "reward_sum"}
