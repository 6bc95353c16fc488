"""``orsta-trl report`` on real TensorBoard event files written by torch's SummaryWriter."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from orsta_trl.monitor.report import (
    file_names,
    format_summary,
    load_scalars,
    parse_tag,
    report_main,
    summarize,
    write_report,
)


def _write_run(run: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    first = SummaryWriter(str(run), filename_suffix=".part1")
    second = SummaryWriter(str(run / "resumed"), filename_suffix=".part2")
    for step in range(1, 7):
        writer = first if step <= 3 else second
        writer.add_scalar("train/source/a/reward", 0.1 * step, step)
        writer.add_scalar("train/source/a/accuracy", 0.05 * step, step)
        writer.add_scalar("train/source/a/length/mean", 100.0 + step, step)
        writer.add_scalar("train/source/a/truncated/ratio", 0.5 / step, step)
        writer.add_scalar("train/source/a/reflection/ratio", 0.25, step)
        writer.add_scalar("train/source/b/reward", 1.0 - 0.1 * step, step)
        writer.add_scalar("train/source/b/accuracy", 0.5, step)
        writer.add_scalar("train/source/web/qa/reward", 0.2 * step, step)  # '/' in the source name
        writer.add_scalar("train/loss", 3.0, step)  # not a per-source tag
        writer.add_scalar("eval/rewards/orsta/mean", 0.3, step)  # TRL eval metric, not per-source
        if step % 3 == 0:
            writer.add_scalar("eval/source/a/reward", 0.3 * step / 3, step)
            writer.add_scalar("eval/source/a/accuracy", 0.25 * step / 3, step)
    first.close()
    second.close()


@pytest.fixture()
def run(tmp_path) -> Path:
    run = tmp_path / "run"
    _write_run(run)
    return run


def _table_row(text: str, split: str, source: str) -> list[str]:
    block = text.split(f"## {split}\n", 1)[1].split("\n## ", 1)[0]
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == source:
            return cells[1:]
    raise AssertionError(f"no row for {source} in {split}")


def test_load_scalars_merges_files_sorted_by_step(run):
    scalars = load_scalars(run)
    assert [s for s, _ in scalars["train/source/a/reward"]] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in scalars["train/source/a/reward"]] == pytest.approx([0.1 * s for s in range(1, 7)])
    assert [s for s, _ in scalars["eval/source/a/accuracy"]] == [3, 6]


def test_later_point_wins_for_a_repeated_step(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for name, value, wall in (("old", 1.0, 100.0), ("new", 2.0, 200.0)):
        writer = SummaryWriter(str(tmp_path / name))
        writer.add_scalar("train/source/a/reward", value, 5, walltime=wall)
        writer.close()
    assert load_scalars(tmp_path)["train/source/a/reward"] == [(5, 2.0)]


def test_write_report_plots_and_summary(run, tmp_path):
    out = write_report(run)
    assert out == run / "report"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["source_a.png", "source_b.png", "source_web_qa.png"]
    for name in pngs:
        path = out / name
        assert path.stat().st_size > 5000
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.size[0] > 300 and image.size[1] > 200
            image.verify()
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "## train" in text and "## eval" in text
    # steps | reward first | reward last | accuracy first | accuracy last | length last | truncated last | refl last
    assert _table_row(text, "train", "a") == ["6", "0.1", "0.6", "0.05", "0.3", "106.0", "0.08333", "0.25"]
    assert _table_row(text, "train", "b") == ["6", "0.9", "0.4", "0.5", "0.5", "–", "–", "–"]
    assert _table_row(text, "train", "web/qa") == ["6", "0.2", "1.2", "–", "–", "–", "–", "–"]
    assert _table_row(text, "eval", "a") == ["2", "0.3", "0.6", "0.25", "0.5", "–", "–", "–"]
    assert "rewards" not in text and "loss" not in text
    assert format_summary(load_scalars(run)) in text
    other = write_report(run, tmp_path / "elsewhere")
    assert (other / "summary.md").exists() and (other / "source_a.png").exists()


def test_summarize_values(run):
    summary = summarize(load_scalars(run))
    assert set(summary["train"]) == {"a", "b", "web/qa"}
    assert set(summary["eval"]) == {"a"}
    assert summary["train"]["a"]["length_last"] == pytest.approx(106.0)
    assert summary["eval"]["a"]["length_last"] is None


def test_report_main_prints_the_table(run, capsys):
    assert report_main(run) == 0
    printed = capsys.readouterr().out
    assert "| a |" in printed and "| web/qa |" in printed and str(run / "report") in printed


def test_parse_tag_reads_the_one_form_the_monitor_writes():
    assert parse_tag("train/source/a/reward") == ("train", "a", "reward")
    assert parse_tag("train/source/a/length/mean") == ("train", "a", "length/mean")
    assert parse_tag("eval/source/a/accuracy") == ("eval", "a", "accuracy")
    assert parse_tag("eval/source/source/reward") == ("eval", "source", "reward")
    for other_form in ("source/a/reward", "eval/a/accuracy", "train/eval/a/accuracy", "eval_source/a/reward"):
        assert parse_tag(other_form) is None, other_form
    assert parse_tag("eval/source/reward") is None
    assert parse_tag("train/rewards/orsta/mean") is None


def test_file_names_are_sanitised_and_unique():
    names = file_names(["a/b", "a_b", "plain", "sp ace", "../up"])
    assert names["plain"] == "source_plain.png"
    assert names["sp ace"] == "source_sp_ace.png"
    assert names["a/b"] != names["a_b"] and names["a/b"].startswith("source_a_b-")
    assert all("/" not in n for n in names.values()) and names["../up"] == "source_up.png"


def test_missing_run_dir_or_events(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="event files"):
        write_report(tmp_path)


def test_two_runs_in_one_folder_are_told_apart_not_merged(tmp_path, capsys):
    """Two runs trained into one output_dir (each from step 1, in its own runs/<time>_<host> folder): the report
    covers the latest and names both; a resume in a later folder (first step after the run's) stays merged."""
    from torch.utils.tensorboard import SummaryWriter

    out = tmp_path / "run"
    layout = [("runs/A_host", 100.0, range(1, 5), 0.1), ("runs/B_host", 200.0, range(1, 3), 0.9)]
    layout.append(("runs/C_host", 300.0, range(3, 5), 0.8))  # B resumed at step 3 into a new folder
    for folder, wall, steps, value in layout:
        writer = SummaryWriter(str(out / folder))
        for step in steps:
            writer.add_scalar("train/source/a/reward", value, step, walltime=wall + step)
        writer.close()
    assert report_main(out) == 0
    printed = capsys.readouterr().out
    assert "holds the logs of 2 separate runs" in printed
    assert "runs/A_host" in printed and "runs/B_host, runs/C_host" in printed
    series = load_scalars(out)["train/source/a/reward"]
    assert [step for step, _ in series] == [1, 2, 3, 4]
    assert [value for _, value in series] == pytest.approx([0.9, 0.9, 0.8, 0.8])
    text = (out / "report" / "summary.md").read_text(encoding="utf-8")
    assert _table_row(text, "train", "a")[:3] == ["4", "0.9", "0.8"]  # B's and C's points only, none of A's
    assert "2 separate runs" in text
