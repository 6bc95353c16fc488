"""``orsta-trl view RUN_DIR``: one self-contained HTML file to look at a run's completions.

It reads the completion dumps (:mod:`orsta_trl.monitor.dumps`: ``completions/step_*`` and ``eval_step_*``), the
records they name (``completions/records.jsonl``, or record files given with ``data_files``) for the images and
the ground truth, and the TensorBoard scalars (:func:`orsta_trl.monitor.report.load_scalars`) for a curve strip
per source. Everything goes into one HTML page (the template, script and style in ``viewer_static/``) with the
data as JSON: no network load, no server.

Boxes are drawn in each image's original pixels, predictions mapped there as the detection verifier maps
them (:mod:`orsta_trl.monitor.viewer_rows`), with the run's pixel bounds (``completions/meta.json``; the
library defaults for dumps that predate it). Images are downscaled once and stored once per content hash; the
drawing (an SVG whose coordinates are the original pixels) scales them back up to the original size.

Old dumps (without ``group``, ``advantage`` or ``records.jsonl``) still view: advantages are recomputed where
a whole group was dumped, and missing images are shown as missing.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

from orsta_trl.errors import MissingFileError
from orsta_trl.monitor.dumps import read_dump
from orsta_trl.monitor.viewer_rows import BOX_VERIFIERS, ImageStore, record_view, round_value, row_view
from orsta_trl.verifiers.base import RewardSettings
from orsta_trl.verifiers.schedule import iou_threshold_at

_DUMP_RE = re.compile(r"^(eval_)?step_(\d+)\.(jsonl|parquet)$")


def parse_steps(steps: Any) -> tuple[int | None, int | None]:
    """A step filter as (first, last), either open: ``5``, ``"3:7"``, ``"3:"``, ``(3, 7)`` or None."""
    if steps is None or steps == "":
        return None, None
    if isinstance(steps, int):
        return steps, steps
    if isinstance(steps, tuple | list):
        return steps[0], steps[1]
    text = str(steps)
    if ":" not in text:
        return int(text), int(text)
    first, _, last = text.partition(":")
    return (int(first) if first.strip() else None), (int(last) if last.strip() else None)


def dump_files(run_dir: Path) -> list[tuple[str, int, Path]]:
    """(split, step, path) of every dump of the run, in step order."""
    folder = run_dir / "completions"
    found = []
    for path in sorted(folder.glob("*step_*")) if folder.is_dir() else []:
        match = _DUMP_RE.match(path.name)
        if match:
            found.append(("eval" if match.group(1) else "train", int(match.group(2)), path))
    return sorted(found, key=lambda item: (item[1], item[0]))


def _read_json_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interrupted run
    return out


def load_descriptions(run_dir: Path, data_files=()) -> dict[tuple[str, str], dict]:
    """Each record's :func:`~orsta_trl.monitor.dumps.record_entry`, from the run's ``records.jsonl`` and from
    ``data_files`` (raw record files, images relative to each file); a later entry wins."""
    from orsta_trl.data.records import iter_raw_records

    found: dict[tuple[str, str], dict] = {}
    for path in data_files or ():
        base = Path(path).resolve().parent
        for _, raw in iter_raw_records(path):
            if not isinstance(raw, dict):
                continue
            reward = raw.get("reward")
            reward = json.loads(reward) if isinstance(reward, str) else reward or {}
            images = [str(base / i) if isinstance(i, str) else None for i in raw.get("images") or []]
            found[(str(raw.get("data_source")), str(raw.get("id")))] = {
                "images": images,
                "image_sizes": [],
                "verifier": reward.get("verifier"),
                "ground_truth": reward.get("ground_truth"),
                "params": reward.get("params") or {},
            }
    sidecar = run_dir / "completions" / "records.jsonl"
    if sidecar.is_file():
        for entry in _read_json_lines(sidecar):
            found[(str(entry.get("data_source")), str(entry.get("id")))] = entry
    return found


def _advantages_from_dump(rows: list[dict], group_size: int | None) -> None:
    """Fill in missing advantages where a whole group was dumped (older dumps), GRPO's group scaling."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("advantage") is None and row["split"] == "train":
            groups[(row["step"], row["data_source"], row["id"], row.get("group"))].append(row)
    for members in groups.values():
        if not group_size or len(members) != group_size or group_size < 2:
            continue
        rewards = [m["reward"] for m in members]
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
        for m in members:
            m["advantage"] = (m["reward"] - mean) / (std + 1e-4)


def _curves(run_dir: Path, sources: set[str], meta: dict, box_sources: set[str]) -> dict:
    from orsta_trl.monitor.report import event_files, load_scalars
    from orsta_trl.monitor.source_metrics import parse_tag

    curves: dict[str, dict[str, list]] = {s: {} for s in sources}
    scalars = load_scalars(run_dir) if event_files(run_dir) else {}
    for tag, points in scalars.items():
        parsed = parse_tag(tag)
        if parsed is None:
            continue
        split, source, name = parsed
        if source in curves and name in ("reward", "accuracy"):
            curves[source][f"{split} {name}"] = [[int(s), round_value(v)] for s, v in points]
    logged = scalars.get("train/reward/iou_threshold")  # the trainer's threshold in force, per logged step
    max_steps, schedule = meta.get("max_steps"), meta.get("iou_schedule")
    for source in box_sources & sources:
        steps = sorted({s for series in curves[source].values() for s, _ in series})
        if logged:
            curves[source]["IoU threshold"] = [[int(s), round_value(v)] for s, v in logged]
        elif max_steps and schedule and steps:
            curves[source]["IoU threshold"] = [[s, iou_threshold_at(s / max_steps, schedule)] for s in steps]
    return curves


def collect(run_dir, sources=None, steps=None, data_files=()) -> dict:
    """The viewer's data for ``run_dir``: rows, records, images (as data URIs) and curves.

    Args:
        run_dir: a run's ``output_dir`` (with ``completions/`` dumps).
        sources: keep only these data sources (None: all).
        steps: keep only these steps (see :func:`parse_steps`).
        data_files: record files to read images and ground truth from, for dumps without ``records.jsonl``.

    Returns:
        A JSON-ready dict (the page's data).
    """
    run_dir = Path(run_dir)
    files = dump_files(run_dir)
    if not files:
        raise MissingFileError(
            f"no completion dumps under {run_dir / 'completions'}: train with dump_completions > 0 "
            "(e.g. --dump_completions 0.25)"
        )
    first, last = parse_steps(steps)
    wanted = set(sources) if sources else None
    meta_path = run_dir / "completions" / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    defaults = RewardSettings()
    settings = {
        "min_pixels": meta.get("min_pixels", defaults.min_pixels),
        "max_pixels": meta.get("max_pixels", defaults.max_pixels),
    }
    rows = []
    for split, step, path in files:
        if (first is not None and step < first) or (last is not None and step > last):
            continue
        for row in read_dump(path):
            row["split"] = split if row.get("split") in (None, "train") else row["split"]
            if wanted is None or row["data_source"] in wanted:
                rows.append(row)
    _advantages_from_dump(rows, meta.get("num_generations"))
    descriptions = load_descriptions(run_dir, data_files)
    store = ImageStore()
    records: dict[str, dict] = {}
    out_rows, prompts, prompt_index = [], [], {}
    for row in rows:
        key = f"{row['data_source']}\u241f{row['id']}"
        desc = descriptions.get((row["data_source"], str(row["id"])))
        if key not in records:
            records[key] = record_view(row, desc, store)
        view = records[key]
        prompt = row.get("prompt") or ""
        if prompt not in prompt_index:
            prompt_index[prompt] = len(prompts)
            prompts.append(prompt)
        out_rows.append(row_view(row, view, prompt_index[prompt], store, settings))
    box_sources = {r["src"] for r in records.values() if r["verifier"] in BOX_VERIFIERS}
    return {
        "title": str(run_dir),
        "settings": settings,
        "images": store.data,
        "records": records,
        "prompts": prompts,
        "rows": out_rows,
        "curves": _curves(run_dir, {r["data_source"] for r in rows}, meta, box_sources),
        "sources": sorted({r["data_source"] for r in rows}),
    }


def _script_safe(data: dict) -> str:
    """JSON that cannot end the ``<script>`` element it sits in, nor open a comment or CDATA there."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict, initial: dict | None = None) -> str:
    """The page: template + style + script + data (``initial``: filters applied when the URL gives none)."""
    static = resources.files("orsta_trl.monitor") / "viewer_static"
    for record in data["records"].values():
        record.pop("_path", None)
    page = (static / "viewer.html").read_text(encoding="utf-8")
    parts = {
        "/*STYLE*/": (static / "viewer.css").read_text(encoding="utf-8"),
        "/*SCRIPT*/": (static / "viewer.js").read_text(encoding="utf-8"),
        "/*DATA*/": _script_safe({**data, "initial": initial or {}}),
    }
    for marker, text in parts.items():
        page = page.replace(marker, text, 1)
    return page


class View:
    """A rendered viewer page: ``.html`` (the whole file), ``.save(path)``, and an inline render in Jupyter."""

    def __init__(self, html: str, n_rows: int):
        self.html = html
        self.n_rows = n_rows

    def save(self, path) -> Path:
        """Write the page to ``path`` (folders created); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        # In an iframe (as folium does): the page's script and style stay inside it, whatever the notebook.
        import html

        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:720px;'
            'border:1px solid #ccc" sandbox="allow-scripts"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<orsta_trl View: {self.n_rows} completions, {len(self.html) / 1e6:.1f} MB>"


def build_view(run_dir, sources=None, steps=None, data_files=(), initial=None) -> View:
    """Collect a run's dumps and render them (see :func:`collect`)."""
    data = collect(run_dir, sources=sources, steps=steps, data_files=data_files)
    return View(render_html(data, initial), len(data["rows"]))


def view_main(run_dir, output=None, sources=None, steps=None, data_files=()) -> int:
    """What ``orsta-trl view`` runs: write the page, print its path; return the exit status."""
    page = build_view(run_dir, sources=sources, steps=steps, data_files=data_files)
    out = Path(output) if output else Path(run_dir) / "viewer.html"
    page.save(out)
    summary = Path(run_dir) / "report" / "summary.md"  # a report written before the page: link it there too
    if summary.is_file() and "## Rollouts" not in summary.read_text(encoding="utf-8"):
        from orsta_trl.monitor.report import viewer_link

        with summary.open("a", encoding="utf-8") as handle:
            handle.write("\n" + viewer_link(summary.parent, out))
    print(f"{page.n_rows} completions; viewer written to {out.resolve()}")
    return 0
