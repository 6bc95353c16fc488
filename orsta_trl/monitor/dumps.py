"""Completion dumps: a deterministic sample of each step's completions, as JSONL or Parquet.

``CompletionDumper.write(step, rows, prompts)`` keeps ``fraction`` of the rows and writes them to
``<output_dir>/completions/step_{step:07d}.jsonl`` (or ``.parquet``), one record per completion with the
fields in :data:`FIELDS`. JSONL lines carry ``id``, ``data_source`` and ``completion``, so a dump is a valid
input of ``orsta-trl score``. In Parquet, ``parts`` is a ``map<string, double>`` column; :func:`read_dump`
returns the same dicts for both formats.

Sampling: the number kept is ``fraction * n`` rounded stochastically (floor, plus one with probability equal
to the fractional part), so small fractions still dump some steps and the long-run share is exact; which rows
are kept is drawn from a generator seeded by ``(seed, step)``, so a rerun or resume dumps the same rows.
Call it on the main process only, with rows gathered from every rank. Files are written atomically.

For the viewer (:mod:`orsta_trl.monitor.viewer`) a dump also carries ``split`` (``train``, or ``eval`` for the
held-out evaluation, written to ``eval_step_*``), ``group`` (the prompt group within the step), ``advantage``
(GRPO's, within the group) and ``tools`` (the tool loop's record of the rollout). Beside the dumps,
``records.jsonl`` holds each dumped record once (images as absolute paths, ground truth, params, image sizes)
and ``meta.json`` the run's pixel bounds, so a dump can be viewed without its recipe. Dumps written before
these fields existed read back with them as None (``split``: ``train``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orsta_trl.rewards.sample import Sample

FIELDS: tuple[str, ...] = (
    "step",
    "id",
    "data_source",
    "prompt",
    "completion",
    "reward",
    "accuracy",
    "format",
    "parts",
    "reason",
    "detail",
    "length",
    "truncated",
    "split",
    "group",
    "advantage",
    "tools",
)
#: Fields added after the first dumps: what :func:`read_dump` fills in when a dump lacks them.
OPTIONAL = {"split": "train", "group": None, "advantage": None, "tools": None}
FORMATS = ("jsonl", "parquet")


def sample_indices(n: int, fraction: float, seed: int, step: int) -> list[int]:
    """Sorted indices of the rows kept at ``step`` (deterministic in (seed, step))."""
    if n <= 0 or fraction <= 0:
        return []
    if fraction >= 1:
        return list(range(n))
    rng = np.random.default_rng([int(seed), int(step)])
    exact = fraction * n
    k = math.floor(exact) + int(rng.random() < exact - math.floor(exact))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def to_record(step: int, row: Sample, prompt: str, split: str = "train", group=None, advantage=None) -> dict:
    return {
        "step": int(step),
        "id": row.id,
        "data_source": row.data_source,
        "prompt": prompt,
        "completion": row.text,
        "reward": float(row.reward),
        "accuracy": float(row.accuracy),
        "format": float(row.format),
        "parts": {k: float(v) for k, v in row.parts.items()},
        "reason": row.reason,
        "detail": row.detail,
        "length": int(row.length),
        "truncated": bool(row.truncated),
        "split": split,
        "group": None if group is None else int(group),
        "advantage": None if advantage is None else float(advantage),
        "tools": None if row.tools is None else json.loads(json.dumps(dict(row.tools), default=str)),
    }


def record_entry(record) -> dict:
    """What the viewer needs of a :class:`~orsta_trl.data.records.Record`: images as absolute paths (None for
    an in-memory image), their sizes, the verifier, its ground truth and params."""
    raw = record.raw_reward or {}
    return {
        "id": record.id,
        "data_source": record.data_source,
        "images": [img if isinstance(img, str) else None for img in record.images],
        "image_sizes": [list(size) for size in record.image_sizes],
        "verifier": getattr(record.reward.verifier, "name", None) or raw.get("verifier"),
        "ground_truth": raw.get("ground_truth"),
        "params": raw.get("params") or {},
    }


class CompletionDumper:
    """Writes sampled completions of a step under ``output_dir/completions``."""

    def __init__(self, output_dir: str | Path, fraction: float, fmt: str = "jsonl", seed: int = 0):
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"dump fraction must lie in [0, 1], got {fraction}")
        if fmt not in FORMATS:
            raise ValueError(f"dump format must be one of {list(FORMATS)}, got {fmt!r}")
        self.directory = Path(output_dir) / "completions"
        self.fraction = float(fraction)
        self.fmt = fmt
        self.seed = int(seed)
        self._described: set[tuple[str, str]] = set()

    def path(self, step: int, split: str = "train") -> Path:
        prefix = "eval_step" if split == "eval" else "step"
        return self.directory / f"{prefix}_{int(step):07d}.{self.fmt}"

    def write_meta(self, **meta) -> None:
        """``meta.json``: what the viewer needs of the run (pixel bounds, group size)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.directory / "meta.json")

    def write(
        self,
        step: int,
        rows: Sequence[Sample],
        prompts: Sequence[str],
        *,
        split: str = "train",
        groups: Sequence[int] | None = None,
        advantages: Sequence[float] | None = None,
        describe=None,
    ) -> Path | None:
        """Write the sampled rows of ``step``; None when nothing is kept (no file is created then).

        ``split="eval"`` keeps the same rows at every evaluation (the held-out set is followed over time);
        ``describe(data_source, id)`` returns a record's :func:`record_entry` (or None), appended to
        ``records.jsonl`` the first time the record is dumped.
        """
        if len(rows) != len(prompts):
            raise ValueError(f"{len(rows)} rows but {len(prompts)} prompts")
        keep = sample_indices(len(rows), self.fraction, self.seed, 0 if split == "eval" else step)
        if not keep:
            return None
        records = [
            to_record(
                step,
                rows[i],
                prompts[i],
                split,
                None if groups is None else groups[i],
                None if advantages is None else advantages[i],
            )
            for i in keep
        ]
        if describe is not None:
            self._describe([rows[i] for i in keep], describe)
        path = self.path(step, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if self.fmt == "jsonl":
            with tmp.open("w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            _write_parquet(tmp, records)
        os.replace(tmp, path)
        return path

    def _describe(self, rows: Sequence[Sample], describe) -> None:
        new = []
        for row in rows:
            key = (row.data_source, row.id)
            if key not in self._described:
                self._described.add(key)
                entry = describe(*key)
                if entry is not None:
                    new.append(json.dumps(entry, ensure_ascii=False, default=str))
        if new:  # appended: a resumed run adds to it; the viewer keeps the last entry of a record
            self.directory.mkdir(parents=True, exist_ok=True)
            with (self.directory / "records.jsonl").open("a", encoding="utf-8") as handle:
                handle.write("\n".join(new) + "\n")


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("step", pa.int64()),
            ("id", pa.string()),
            ("data_source", pa.string()),
            ("prompt", pa.string()),
            ("completion", pa.string()),
            ("reward", pa.float64()),
            ("accuracy", pa.float64()),
            ("format", pa.float64()),
            ("parts", pa.map_(pa.string(), pa.float64())),
            ("reason", pa.string()),
            ("detail", pa.string()),
            ("length", pa.int64()),
            ("truncated", pa.bool_()),
            ("split", pa.string()),
            ("group", pa.int64()),
            ("advantage", pa.float64()),
            ("tools", pa.string()),  # JSON: the rollout record's shape varies
        ]
    )


def _write_parquet(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    columns = {name: [r[name] for r in records] for name in FIELDS}
    columns["parts"] = [list(p.items()) for p in columns["parts"]]
    columns["tools"] = [None if t is None else json.dumps(t) for t in columns["tools"]]
    pq.write_table(pa.table(columns, schema=schema), path)


def read_dump(path: str | Path) -> list[dict]:
    """The records of a dump (``.jsonl`` or ``.parquet``), each a dict with the keys in :data:`FIELDS` (those of
    :data:`OPTIONAL` filled in for older dumps)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
        for record in records:
            record["parts"] = dict(record["parts"] or [])
            if isinstance(record.get("tools"), str):
                record["tools"] = json.loads(record["tools"])
    else:
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    for record in records:
        for key, default in OPTIONAL.items():
            record.setdefault(key, default)
    return records
