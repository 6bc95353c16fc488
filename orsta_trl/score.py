"""Score completions offline with the same verifiers and router as training (``orsta-trl score``).

Input: a dataset in the record contract and a JSONL of ``{"id", "data_source", "completion"}`` lines (many
lines may share an id; completion dumps written during training qualify). Output: one JSON line per input line,
in order, with ``id, data_source, verifier, reward, accuracy, format, parts, reason``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path


def read_completions(path: str | Path) -> list[dict]:
    """Completion lines from JSONL, or rows from a Parquet completion dump; each needs id, data_source, completion."""
    if str(path).endswith(".parquet"):
        from orsta_trl.monitor.dumps import read_dump

        numbered = list(enumerate(read_dump(path)))
    else:
        numbered = []
        with Path(path).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        numbered.append((number, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{number}: not valid JSON: {exc}") from None
    for number, row in numbered:
        missing = [k for k in ("id", "data_source", "completion") if k not in row]
        if missing:
            raise ValueError(f"{path}:{number}: missing field(s) {missing}")
        if not isinstance(row["completion"], str):
            raise ValueError(f"{path}:{number}: 'completion' must be a string")
    return [row for _, row in numbered]


def score_files(
    records_path, completions_path, out_path, *, progress: float = 1.0, recipe_path=None
) -> list[dict]:
    """Score every completion line; write OUT; return the output rows."""
    from orsta_trl.data.records import load_records
    from orsta_trl.recipe import orsta_config_from
    from orsta_trl.verifiers.router import RewardRouter

    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"--progress must lie in [0, 1], got {progress}")
    settings = orsta_config_from(recipe_path).reward_settings()
    records = load_records(records_path, image_sizes="needed")
    router = RewardRouter.from_records(records, settings)
    rows = read_completions(completions_path)
    keys = [(str(r["data_source"]), str(r["id"])) for r in rows]
    for number, key in enumerate(keys, start=1):
        if key not in router.records:
            raise KeyError(
                f"{completions_path}:{number}: no record with data_source={key[0]!r} and id={key[1]!r} "
                f"in {records_path}"
            )
    try:
        router.start()
        scored = router.score(keys, [r["completion"] for r in rows], progress)
    finally:
        router.close()
    out = [s.as_dict() for s in scored]
    with Path(out_path).open("w", encoding="utf-8") as handle:
        for row in out:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def summary_table(rows: list[dict]) -> str:
    """Per-source means of reward, accuracy and format, and the commonest reasons."""
    by_source = defaultdict(list)
    for row in rows:
        by_source[row["data_source"]].append(row)
    header = f"{'data_source':<24} {'n':>6} {'reward':>8} {'accuracy':>9} {'format':>7}  reasons"
    lines = [header, "-" * len(header)]
    for source in sorted(by_source):
        group = by_source[source]
        n = len(group)
        reasons = Counter(r["reason"] for r in group if r["reason"])
        reason_text = ", ".join(f"{k}={v}" for k, v in reasons.most_common(4)) or "-"
        lines.append(
            f"{source:<24} {n:>6} {sum(r['reward'] for r in group) / n:>8.3f} "
            f"{sum(r['accuracy'] for r in group) / n:>9.3f} {sum(r['format'] for r in group) / n:>7.3f}  {reason_text}"
        )
    return "\n".join(lines)
