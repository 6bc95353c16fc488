"""``orsta-trl report RUN_DIR``: per-source plots and a Markdown summary from a run's TensorBoard events.

:func:`load_scalars` reads the event files of one run under RUN_DIR (recursively) and merges them: points are
sorted by step and, when two files hold the same tag and step (a resumed run), the later-written point wins.

Two runs written into one folder are told apart, never merged (:func:`log_runs`): each log folder (transformers
opens ``runs/<time>_<host>`` per process; a resume continues the earlier one) is taken in the order it was first
written, and a folder whose first step is not after the current run's first step starts a new run (a run starts
from the beginning; a resume in a new folder starts later). The report covers the latest run and names the others.

Per-source tags have one form, the one the monitor emits: ``train/source/<ds>/<metric>`` and
``eval/source/<ds>/<metric>`` (:func:`orsta_trl.monitor.source_metrics.parse_tag`).

A data_source may contain '/': the metric is recognised as the longest valid suffix
(:func:`orsta_trl.monitor.source_metrics.split_tag`). File names are sanitised (``[A-Za-z0-9._-]``, plus a
short hash when two sources would collide).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

from orsta_trl.errors import MissingFileError
from orsta_trl.monitor.source_metrics import TAG_PREFIX, parse_tag

Series = list[tuple[int, float]]
PLOTTED = ("reward", "accuracy", "length/mean", "truncated/ratio", "reflection/ratio")
SPLITS = tuple(TAG_PREFIX)


def event_files(run_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).rglob("*") if p.is_file() and "tfevents" in p.name)


def _events(path: Path) -> list[tuple[str, int, float, float]]:
    """(tag, step, wall_time, value) of every scalar in one event file."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={SCALARS: 0})
    accumulator.Reload()
    return [
        (tag, e.step, e.wall_time, float(e.value))
        for tag in accumulator.Tags().get(SCALARS, [])
        for e in accumulator.Scalars(tag)
    ]


def log_runs(run_dir: str | Path) -> list[list[Path]]:
    """The event files under ``run_dir``, one list per run, oldest run first (see the module docstring)."""
    folders: dict[Path, list[Path]] = defaultdict(list)
    for path in event_files(run_dir):
        folders[path.parent].append(path)
    starts = {}  # folder -> (first wall time, first step)
    for folder, files in folders.items():
        events = [e for path in files for e in _events(path)]
        starts[folder] = (min((e[2] for e in events), default=0.0), min((e[1] for e in events), default=0))
    runs: list[list[Path]] = []
    first_step = None
    for folder in sorted(folders, key=lambda f: (starts[f], str(f))):
        step = starts[folder][1]
        if first_step is None or step <= first_step:  # starts from the beginning again: another run
            runs.append([])
            first_step = step
        runs[-1].extend(folders[folder])
    return runs


def load_scalars(run_dir: str | Path, files: list[Path] | None = None) -> dict[str, Series]:
    """``{tag: [(step, value), ...]}`` over ``files`` (default: the latest run's under ``run_dir``), by step."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MissingFileError(f"no such run directory: {run_dir}")
    if files is None:
        runs = log_runs(run_dir)
        files = runs[-1] if runs else []
    points: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)  # tag -> step -> (wall_time, value)
    for path in files:
        for tag, step, wall_time, value in _events(path):
            previous = points[tag].get(step)
            if previous is None or wall_time >= previous[0]:
                points[tag][step] = (wall_time, value)
    return {
        tag: [(step, value) for step, (_, value) in sorted(by_step.items())]
        for tag, by_step in points.items()
    }


def by_source(scalars: dict[str, Series]) -> dict[str, dict[str, dict[str, Series]]]:
    """``{split: {data_source: {metric: series}}}`` from :func:`load_scalars`' output."""
    out: dict[str, dict[str, dict[str, Series]]] = {split: defaultdict(dict) for split in SPLITS}
    for tag, series in scalars.items():
        parsed = parse_tag(tag)
        if parsed and series:
            split, source, metric = parsed
            merged = dict(out[split][source].get(metric, []))
            merged.update(series)
            out[split][source][metric] = sorted(merged.items())
    return {split: dict(sources) for split, sources in out.items()}


def summarize(scalars: dict[str, Series]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per split and source: steps logged, first/last reward and accuracy, last length/truncation/reflection."""
    out = {}
    for split, sources in by_source(scalars).items():
        out[split] = {}
        for source in sorted(sources):
            metrics = sources[source]
            steps = {step for series in metrics.values() for step, _ in series}

            def pick(metric, index, _metrics=metrics):
                series = _metrics.get(metric)
                return series[index][1] if series else None

            out[split][source] = {
                "steps": len(steps),
                "reward_first": pick("reward", 0),
                "reward_last": pick("reward", -1),
                "accuracy_first": pick("accuracy", 0),
                "accuracy_last": pick("accuracy", -1),
                "length_last": pick("length/mean", -1),
                "truncated_last": pick("truncated/ratio", -1),
                "reflection_last": pick("reflection/ratio", -1),
            }
    return out


_COLUMNS = (
    ("steps", "steps"),
    ("reward first", "reward_first"),
    ("reward last", "reward_last"),
    ("accuracy first", "accuracy_first"),
    ("accuracy last", "accuracy_last"),
    ("length/mean last", "length_last"),
    ("truncated/ratio last", "truncated_last"),
    ("reflection/ratio last", "reflection_last"),
)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"


def format_summary(scalars: dict[str, Series]) -> str:
    """The Markdown tables of ``summary.md`` (one per split that has data)."""
    summary = summarize(scalars)
    blocks = []
    for split in SPLITS:
        if not summary[split]:
            continue
        lines = [
            f"## {split}",
            "",
            "| data_source | " + " | ".join(name for name, _ in _COLUMNS) + " |",
            "|---" * (len(_COLUMNS) + 1) + "|",
        ]
        for source, values in summary[split].items():
            cells = [_cell(values[key]) for _, key in _COLUMNS]
            lines.append("| " + " | ".join([source.replace("|", "\\|"), *cells]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "(no per-source metrics found)"


def file_names(sources: list[str]) -> dict[str, str]:
    """``{source: "source_<sanitised>.png"}``, unique even when sanitised names collide."""
    safe = {s: re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "_" for s in sources}
    counts = defaultdict(int)
    for name in safe.values():
        counts[name] += 1
    for s, name in safe.items():
        if counts[name] > 1:
            safe[s] = f"{name}-{hashlib.sha1(s.encode()).hexdigest()[:8]}"
    return {s: f"source_{name}.png" for s, name in safe.items()}


def plot_source(source: str, train: dict[str, Series], evaluation: dict[str, Series], path: Path) -> Path:
    """One figure: a panel per plotted metric present in either split (train solid, eval dashed markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in PLOTTED if m in train or m in evaluation]
    columns = min(3, max(1, len(metrics)))
    rows = max(1, -(-len(metrics) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    flat = axes.ravel()
    for ax, metric in zip(flat, metrics, strict=False):
        if metric in train:
            steps, values = zip(*train[metric], strict=True)
            ax.plot(steps, values, "-", label="train")
        if metric in evaluation:
            steps, values = zip(*evaluation[metric], strict=True)
            ax.plot(steps, values, "--o", markersize=3, label="eval")
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in flat[len(metrics) :]:
        ax.axis("off")
    if not metrics:
        flat[0].text(0.5, 0.5, "no plotted metrics logged", ha="center", va="center")
    fig.suptitle(source)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Plots and a summary table from a run's TensorBoard event files.

    Args:
        run_dir: the run's ``output_dir`` (event files are found recursively, resumed runs merged; of several
            runs in one folder, the latest, with a note naming the others).
        out_dir: where to write (default ``RUN_DIR/report``).

    Returns:
        The folder holding ``source_<data_source>.png`` per source and ``summary.md``.
    """
    runs = log_runs(run_dir) if Path(run_dir).is_dir() else []
    return _write(
        Path(run_dir), out_dir, load_scalars(run_dir, runs[-1] if runs else None), runs_note(run_dir, runs)
    )


def _write(run_dir: Path, out_dir, scalars: dict[str, Series], note: str = "") -> Path:
    if not event_files(run_dir):
        raise MissingFileError(f"no TensorBoard event files under {run_dir}")
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    split = by_source(scalars)
    sources = sorted(set(split["train"]) | set(split["eval"]))
    names = file_names(sources)
    for source in sources:
        plot_source(
            source, split["train"].get(source, {}), split["eval"].get(source, {}), out / names[source]
        )
    text = f"# Run report: {run_dir}\n\n" + format_summary(scalars) + "\n"
    if sources:
        text += "\n## Plots\n\n" + "".join(f"- `{s}`: [{names[s]}]({names[s]})\n" for s in sources)
    if note:
        text += "\n" + note + "\n"
    viewer = run_dir / "viewer.html"
    if viewer.is_file():
        text += "\n" + viewer_link(out, viewer)
    (out / "summary.md").write_text(text, encoding="utf-8")
    return out


def runs_note(run_dir: str | Path, runs: list[list[Path]]) -> str:
    """A note naming every run's log folders when ``run_dir`` holds more than one ("" for one run)."""
    if len(runs) < 2:
        return ""
    root = Path(run_dir)
    lines = [
        f"  {'latest (reported)' if i == len(runs) - 1 else f'run {i + 1}':<18} "
        + ", ".join(sorted({str(p.parent.relative_to(root)) for p in files}))
        for i, files in enumerate(runs)
    ]
    return (
        f"{root} holds the logs of {len(runs)} separate runs; the report covers the latest only:\n"
        + "\n".join(lines)
        + f"\n(report an earlier one with `orsta-trl report {root}/<its folder>`)"
    )


def viewer_link(report_dir: Path, page: Path) -> str:
    """The summary's line pointing at the rollout viewer's page (``orsta-trl view``)."""
    import os

    target = Path(os.path.relpath(Path(page).resolve(), Path(report_dir).resolve())).as_posix()
    return f"## Rollouts\n\nEvery dumped completion, with its image and boxes: [viewer]({target})\n"


def report_main(run_dir: str | Path, out_dir: str | Path | None = None) -> int:
    """What ``orsta-trl report`` runs: write the report, print the summary, return the exit status."""
    runs = log_runs(run_dir) if Path(run_dir).is_dir() else []
    scalars = load_scalars(run_dir, runs[-1] if runs else None)
    note = runs_note(run_dir, runs)
    out = _write(Path(run_dir), out_dir, scalars, note)
    if note:
        print(note + "\n")
    print(format_summary(scalars))
    print(f"\nreport written to {out}")
    return 0
