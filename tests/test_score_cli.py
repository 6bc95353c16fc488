"""``orsta-trl score``: one output line per input line, in order; --progress moves the IoU threshold; errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image


def run_score(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "score", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_score_file(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "i.png")
    records = [
        {
            "id": "m1",
            "data_source": "math",
            "prompt": [{"role": "user", "content": "1+1?"}],
            "reward": {
                "verifier": "math",
                "ground_truth": "2",
                "format_weight": 1.0,
                "params": {"format": "none"},
            },
        },
        {
            "id": "d1",
            "data_source": "det",
            "images": ["i.png"],
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find it"}]}],
            "reward": {
                "verifier": "detection",
                "ground_truth": [{"bbox_2d": [10, 10, 50, 50], "label": "a"}],
                "params": {"pred_coords": "original"},
            },
        },
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    box = '<answer>[{"bbox_2d": [10, 10, 50, 52], "label": "a"}]</answer>'  # IoU 0.952
    lines = [
        ("m1", "math", r"\boxed{2}"),
        ("d1", "det", box),
        ("m1", "math", "no idea"),
        ("m1", "math", r"\boxed{3}"),
    ]
    (tmp_path / "c.jsonl").write_text(
        "".join(json.dumps({"id": i, "data_source": s, "completion": c}) + "\n" for i, s, c in lines)
    )
    early = run_score(
        tmp_path / "r.jsonl",
        tmp_path / "c.jsonl",
        "-o",
        tmp_path / "early.jsonl",
        "--progress",
        "0.2",
        cwd=tmp_path,
    )
    assert early.returncode == 0, early.stderr
    late = run_score(tmp_path / "r.jsonl", tmp_path / "c.jsonl", "-o", tmp_path / "late.jsonl", cwd=tmp_path)
    assert late.returncode == 0, late.stderr
    out = [json.loads(x) for x in (tmp_path / "early.jsonl").read_text().splitlines()]
    assert [o["id"] for o in out] == ["m1", "d1", "m1", "m1"]
    assert set(out[0]) == {"id", "data_source", "verifier", "reward", "accuracy", "format", "parts", "reason"}
    assert [o["reward"] for o in out[::2]] == [1.0, 0.5]  # (1 + 1) / 2, then (0 + 1) / 2
    assert out[2]["reason"] == "no_answer" and out[3]["accuracy"] == 0.0
    late_det = json.loads((tmp_path / "late.jsonl").read_text().splitlines()[1])
    assert out[1]["accuracy"] > 0.9 > late_det["accuracy"]  # threshold 0.95 at progress 0.2, 0.99 at 1.0
    assert out[1]["parts"]["precision@0.95"] == 1.0 and late_det["parts"]["precision@0.99"] == 0.0
    assert "det" in early.stderr and "no_answer=1" in early.stderr


def test_unknown_id_is_named(tmp_path):
    (tmp_path / "r.jsonl").write_text(
        json.dumps(
            {
                "id": "m1",
                "data_source": "math",
                "prompt": [{"role": "user", "content": "?"}],
                "reward": {"verifier": "math", "ground_truth": "2"},
            }
        )
        + "\n"
    )
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"id": "m9", "data_source": "math", "completion": "x"}) + "\n"
    )
    result = run_score(tmp_path / "r.jsonl", tmp_path / "c.jsonl", "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert "id='m9'" in result.stderr and "c.jsonl:1" in result.stderr


def test_every_text_verifier_scores_through_the_cli(tmp_path):
    doc = "# Title\n\nFirst paragraph.\n\nSecond paragraph."
    plan = {
        "steps": [
            {"id": "a", "agent": "search", "task": "find", "depends_on": []},
            {"id": "b", "agent": "write", "task": "report", "depends_on": ["a"]},
        ]
    }
    cases = [
        ("docparse", doc, doc, {"edit": 1.0, "count": 1.0, "order": 1.0}),
        ("json", None, '{"query": "x"}', {"json_hard": 0.2, "json_soft": 0.4}),
        ("plan", plan, json.dumps(plan), {"valid_dag": 1.0}),
        (
            "tool",
            "42",
            "<think>t</think><tool_call>{}</tool_call><tool_response>42</tool_response>"
            r"<answer>\boxed{42}</answer>",
            {"tool_success": 1.0},
        ),
        ("rewrite", "cheap flights to paris", '{"rewritten_query": "low-cost airfare to Paris"}', None),
    ]
    records = [
        {
            "id": name,
            "data_source": name,
            "prompt": [{"role": "user", "content": "?"}],
            "reward": {"verifier": name, "ground_truth": gt},
        }
        for name, gt, _, _ in cases
    ]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "c.jsonl").write_text(
        "".join(
            json.dumps({"id": name, "data_source": name, "completion": text}) + "\n"
            for name, _, text, _ in cases
        )
    )
    result = run_score(tmp_path / "r.jsonl", tmp_path / "c.jsonl", "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = {o["verifier"]: o for o in map(json.loads, (tmp_path / "o.jsonl").read_text().splitlines())}
    for name, _, _, parts in cases:
        assert out[name]["reason"] is None, out[name]
        if parts is not None:
            assert out[name]["parts"] == parts and out[name]["accuracy"] == 1.0
    rewrite = out["rewrite"]["parts"]
    assert rewrite["similarity"] > 0.5 and 0 < rewrite["overlap"] < 0.5
    assert out["rewrite"]["accuracy"] == pytest.approx(max(0.0, rewrite["similarity"] - rewrite["overlap"]))


def test_a_missing_embedder_fails_before_scoring(tmp_path):
    record = {
        "id": "w",
        "data_source": "w",
        "prompt": [{"role": "user", "content": "?"}],
        "reward": {"verifier": "rewrite", "ground_truth": "cheap flights"},
    }
    (tmp_path / "r.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"id": "w", "data_source": "w", "completion": "low fares"}) + "\n"
    )
    (tmp_path / "recipe.yaml").write_text("rewrite_embedder: /nonexistent/embedder\n")
    result = run_score(
        tmp_path / "r.jsonl",
        tmp_path / "c.jsonl",
        "-o",
        tmp_path / "o.jsonl",
        "--recipe",
        tmp_path / "recipe.yaml",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "cannot load its embedder '/nonexistent/embedder'" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_parquet_dump_scores(tmp_path):
    from orsta_trl.monitor.dumps import CompletionDumper
    from orsta_trl.rewards.sample import Sample

    record = {
        "id": "m",
        "data_source": "s",
        "prompt": [{"role": "user", "content": "?"}],
        "reward": {"verifier": "count", "ground_truth": 3},
    }
    (tmp_path / "r.jsonl").write_text(json.dumps(record) + "\n")
    rows = [Sample("s", "m", text=t) for t in ("<answer>3</answer>", "<answer>4</answer>")]
    dump = CompletionDumper(tmp_path, 1.0, "parquet").write(7, rows, ["?", "?"])
    result = run_score(tmp_path / "r.jsonl", dump, "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["accuracy"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == [1.0, 0.0]


def test_every_unknown_row_is_named_with_the_nearest_record(tmp_path):
    records = [
        {"id": f"question-{i}", "data_source": "math", "prompt": [{"role": "user", "content": "?"}],
         "reward": {"verifier": "math", "ground_truth": "2"}}
        for i in (1, 2)
    ]  # fmt: skip
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = [("question-1", "math"), ("questoin-2", "math"), ("question-1", "maths"), ("zzz", "math")]
    (tmp_path / "c.jsonl").write_text(
        "".join(json.dumps({"id": i, "data_source": s, "completion": "x"}) + "\n" for i, s in rows)
    )
    result = run_score(tmp_path / "r.jsonl", tmp_path / "c.jsonl", "-o", tmp_path / "o.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    err = result.stderr
    assert "3 completion row(s) name no record" in err
    assert (
        "c.jsonl:2: no record with data_source='math' and id='questoin-2' (did you mean id 'question-2'?)"
        in err
    )
    assert (
        "c.jsonl:3: no record with data_source='maths' and id='question-1' (no data_source 'maths'; " in err
    )
    assert "did you mean 'math'?)" in err and "c.jsonl:4:" in err
