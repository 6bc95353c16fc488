"""The README's "Prepare your data" walkthrough, run as written (in-process, line by line) on a small COCO
annotation file and a small V-Triune Parquet file written where the walkthrough expects them."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from test_convert import coco_files, vtriune_rows

from orsta_trl.cli import main
from orsta_trl.data.records import load_records

REPO = Path(__file__).resolve().parents[1]


def walkthrough() -> list[list[str]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Walkthrough", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def test_readme_walkthrough_runs_as_written(tmp_path, monkeypatch):
    import datasets

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(REPO / "recipes")
    ann = coco_files(tmp_path / "coco" / "annotations")
    (tmp_path / "coco" / "annotations" / "img").rename(tmp_path / "coco" / "val2017")
    ann.rename(tmp_path / "coco" / "annotations" / "instances_val2017.json")
    (tmp_path / "vtriune").mkdir()
    datasets.Dataset.from_list(vtriune_rows()).to_parquet("vtriune/train.parquet")
    commands = walkthrough()
    assert [c[0] for c in commands] == ["orsta-trl"] * len(commands) and commands[-1][1] == "train"
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main(command[1:])
        assert exit_info.value.code == 0, command
    final = load_records(["data/coco.final.jsonl", "data/vtriune.final.jsonl"])
    assert final and all("pass_rate" in r.extra for r in final)
    assert json.loads((tmp_path / "runs/mine/config.json").read_text())
