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
)
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


def to_record(step: int, row: Sample, prompt: str) -> dict:
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

    def path(self, step: int) -> Path:
        return self.directory / f"step_{int(step):07d}.{self.fmt}"

    def write(self, step: int, rows: Sequence[Sample], prompts: Sequence[str]) -> Path | None:
        """Write the sampled rows of ``step``; None when nothing is kept (no file is created then)."""
        if len(rows) != len(prompts):
            raise ValueError(f"{len(rows)} rows but {len(prompts)} prompts")
        keep = sample_indices(len(rows), self.fraction, self.seed, step)
        if not keep:
            return None
        records = [to_record(step, rows[i], prompts[i]) for i in keep]
        path = self.path(step)
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
        ]
    )


def _write_parquet(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    columns = {name: [r[name] for r in records] for name in FIELDS}
    columns["parts"] = [list(p.items()) for p in columns["parts"]]
    pq.write_table(pa.table(columns, schema=schema), path)


def read_dump(path: str | Path) -> list[dict]:
    """The records of a dump (``.jsonl`` or ``.parquet``), each a dict with the keys in :data:`FIELDS`."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
        for record in records:
            record["parts"] = dict(record["parts"] or [])
        return records
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
