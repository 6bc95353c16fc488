"""Score completions offline with the same verifiers and router as training (``orsta-trl score``).

:func:`score` is the library function (records and completions from files or in memory, samples back);
:func:`score_files` is the command's file-to-file wrapper.

Input: a dataset in the record contract and a JSONL of ``{"id", "data_source", "completion"}`` lines (many
lines may share an id; completion dumps written during training qualify). Output: one JSON line per input line,
in order, with ``id, data_source, verifier, reward, accuracy, format, parts, reason``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from orsta_trl.console import source_table
from orsta_trl.data.records import load_records
from orsta_trl.errors import DataError, MissingFileError
from orsta_trl.keys import nearest
from orsta_trl.recipe import orsta_config_from
from orsta_trl.rewards.router import RewardRouter
from orsta_trl.rewards.sample import Sample
from orsta_trl.verifiers.base import RewardSettings


def read_completions(path: str | Path) -> list[dict]:
    """Completion lines from JSONL, or rows from a Parquet completion dump; each needs id, data_source, completion."""
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: no such completions file")
    if str(path).endswith(".parquet"):
        from orsta_trl.monitor.dumps import read_dump

        numbered = list(enumerate(read_dump(path)))
    else:
        numbered = []
        with Path(path).open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{path}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
                    ) from None
                if line.strip():
                    try:
                        numbered.append((number, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number}: not valid JSON: {exc}") from None
    return _check_rows([row for _, row in numbered], path, [number for number, _ in numbered])


def _check_rows(rows, where, numbers=None) -> list[dict]:
    """Every row is a mapping with id, data_source and a string completion (DataError naming the row)."""
    rows = list(rows)
    for number, row in zip(numbers or range(1, len(rows) + 1), rows, strict=True):
        if not isinstance(row, dict):
            raise DataError(f"{where}:{number}: a completion row must be an object, got {type(row).__name__}")
        missing = [k for k in ("id", "data_source", "completion") if k not in row]
        if missing:
            raise DataError(f"{where}:{number}: missing field(s) {missing}")
        if not isinstance(row["completion"], str):
            raise DataError(f"{where}:{number}: 'completion' must be a string")
    return rows


def score(
    records,
    completions,
    *,
    progress: float = 1.0,
    settings: RewardSettings | None = None,
    recipe_path: str | Path | None = None,
) -> list[Sample]:
    """Score completions against records with the verifiers and the router of training.

    Args:
        records: a dataset path (or several), or records in memory (dicts in the record contract, or
            :class:`~orsta_trl.data.records.Record` objects).
        completions: a JSONL or Parquet path of ``{"id", "data_source", "completion"}`` rows, or such dicts
            in memory (many may share an id; completion dumps written during training qualify).
        progress: training progress in [0, 1] for the dynamic IoU threshold.
        settings: reward settings; default: those of ``recipe_path``, else the defaults.
        recipe_path: a recipe whose pixel bounds, IoU schedule and reward settings apply.

    Returns:
        One :class:`~orsta_trl.rewards.sample.Sample` per completion, in order.

    Raises:
        DataError: a bad record, a bad completion row, or a completion naming no record.
        NotReady: a verifier in use cannot score here (a missing embedding model).

    >>> record = {"id": "q1", "data_source": "toy", "prompt": [{"role": "user", "content": "1+1?"}],
    ...           "reward": {"verifier": "math", "ground_truth": "2", "params": {"format": "none"}}}
    >>> [s.reward for s in score([record], [{"id": "q1", "data_source": "toy", "completion": "\\\\boxed{2}"},
    ...                                     {"id": "q1", "data_source": "toy", "completion": "3"}])]
    [1.0, 0.0]
    """
    if not 0.0 <= progress <= 1.0:
        raise DataError(f"progress must lie in [0, 1], got {progress}")
    if settings is None:
        settings = orsta_config_from(recipe_path).reward_settings()
    router = RewardRouter(load_records(records, image_sizes="needed"), settings)
    where = str(completions) if isinstance(completions, str | Path) else "completions"
    rows = (
        read_completions(completions)
        if isinstance(completions, str | Path)
        else _check_rows(completions, where)
    )
    keys = [(str(r["data_source"]), str(r["id"])) for r in rows]
    unknown = [(number, key) for number, key in enumerate(keys, start=1) if key not in router.records]
    if unknown:
        raise DataError(_unknown_rows_message(where, unknown, router.records))
    try:
        router.start()
        return router.score(router.lookup(keys), [r["completion"] for r in rows], progress)
    finally:
        router.close()


def _unknown_rows_message(where: str, unknown: list, known) -> str:
    """Every completion row naming no record, counted, the first few with the nearest record's id."""
    ids_by_source = defaultdict(list)
    for source, rid in known:
        ids_by_source[source].append(rid)
    lines = [f"{where}: {len(unknown)} completion row(s) name no record in the records"]
    for number, (source, rid) in unknown[:5]:
        line = f"  {where}:{number}: no record with data_source={source!r} and id={rid!r}"
        if source not in ids_by_source:
            hint = nearest(source, ids_by_source)
            line += f" (no data_source {source!r}" + (f"; did you mean {hint!r}?)" if hint else ")")
        elif (hint := nearest(rid, ids_by_source[source])) is not None:
            line += f" (did you mean id {hint!r}?)"
        lines.append(line)
    if len(unknown) > 5:
        lines.append(f"  ... and {len(unknown) - 5} more")
    return "\n".join(lines)


def score_files(
    records_path, completions_path, out_path, *, progress: float = 1.0, recipe_path=None
) -> list[dict]:
    """What ``orsta-trl score`` runs: :func:`score` from files to a file.

    Args:
        records_path, completions_path: as ``records`` and ``completions`` of :func:`score`.
        out_path: the JSONL written, one line per completion (``Sample.as_dict()``).
        progress, recipe_path: as for :func:`score`.

    Returns:
        The rows written, as dicts.
    """
    out = [
        s.as_dict() for s in score(records_path, completions_path, progress=progress, recipe_path=recipe_path)
    ]
    with Path(out_path).open("w", encoding="utf-8") as handle:
        for row in out:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def summary_table(rows: list[dict]) -> str:
    """Per-source means of reward, accuracy and format, and the commonest reasons."""
    by_source = defaultdict(list)
    for row in rows:
        by_source[row["data_source"]].append(row)
    table = {}
    for source, group in by_source.items():
        n = len(group)
        reasons = Counter(r["reason"] for r in group if r["reason"])
        table[source] = {
            "n": n,
            "reward": sum(r["reward"] for r in group) / n,
            "accuracy": sum(r["accuracy"] for r in group) / n,
            "format": sum(r["format"] for r in group) / n,
            "reasons": ", ".join(f"{k}={v}" for k, v in reasons.most_common(4)),
        }
    columns = [("n", "n", "6d"), ("reward", "reward", "8.3f"), ("accuracy", "accuracy", "9.3f"),
               ("format", "format", "7.3f"), ("reasons", "reasons", "s")]  # fmt: skip
    return source_table(table, columns)
