"""The records a command uses, in one call: load and validate the files, optionally skip the invalid ones (reported
per source), keep at most N per source, and apply the recipe's prompt pool, so that training, the warm-up,
evaluation and the filters all see the same prompts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from orsta_trl.console import say, source_table
from orsta_trl.data.prompt_pool import pooled
from orsta_trl.data.records import Record, RecordError, load_records, skipped_report, split_records


def load_pooled(
    files: Sequence, orsta, *, skip_invalid: bool = False, what: str = "training", limit_per_source: int = 0
) -> tuple[list[Record], list[RecordError]]:
    """The records of ``files`` with the recipe's prompt pool applied, and the invalid ones skipped.

    Args:
        files: dataset files (or records in memory, see :func:`orsta_trl.data.records.load_records`).
        orsta: the recipe's settings (its prompt pool keys).
        skip_invalid: keep the valid records and report the invalid ones (else the first bad record raises).
        what: what the records are for, in the report (``"training"``, ``"evaluation"``).
        limit_per_source: at most this many records of each data_source, in file order (0: all).

    Returns:
        (records, errors of the skipped records).
    """
    if not skip_invalid:
        records, errors = load_records(files), []
    else:
        records, errors = split_records(files)
        if errors:
            say(
                f"skip_invalid: skipped {len(errors)} invalid {what} record(s), kept {len(records)}:\n"
                + skipped_report(errors)
            )
            for error in errors[:10]:
                say(f"  {error}")
    return pooled(per_source_subset(records, limit_per_source), orsta), errors


def per_source_subset(records: list[Record], limit: int) -> list[Record]:
    """At most ``limit`` records of each data_source, in file order (0: all)."""
    if not limit:
        return list(records)
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for record in records:
        if seen[record.data_source] < limit:
            seen[record.data_source] += 1
            kept.append(record)
    return kept


def records_table(records: Sequence[Record]) -> str:
    """Per source: records, images, and how many records each verifier scores (``check-data``'s summary)."""
    by_source: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_source[record.data_source].append(record)
    table = {
        source: {
            "records": len(group),
            "images": sum(len(r.images) for r in group),
            "verifiers": ", ".join(
                f"{k}={v}" for k, v in sorted(Counter(r.reward.verifier.name for r in group).items())
            ),
        }
        for source, group in by_source.items()
    }
    columns = [("records", "records", "8d"), ("images", "images", "7d"), ("verifiers", "verifiers", "s")]
    return source_table(table, columns)
