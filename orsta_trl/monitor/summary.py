"""A run's per-source summary table (reward, accuracy, completion length), printed at the end of training.

It accumulates the rows gathered from every rank; the table shows the first and last quarter of the run so
that a user sees at a glance which sources moved.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class SourceSummary:
    steps: list[tuple[int, str, float, float, int]] = field(default_factory=list)

    def update(self, step: int, rows) -> None:
        """``rows``: the Samples of one step (gathered from every rank)."""
        for row in rows:
            self.steps.append((step, row.data_source, row.reward, row.accuracy, int(row.length)))

    def table(self) -> str:
        if not self.steps:
            return "(no completions were scored)"
        first_step = min(s[0] for s in self.steps)
        last_step = max(s[0] for s in self.steps)
        span = max(1, last_step - first_step + 1)
        early = first_step + span / 4
        late = last_step - span / 4
        by_source = defaultdict(list)
        for row in self.steps:
            by_source[row[1]].append(row)
        header = (
            f"{'data_source':<24} {'n':>6} {'reward':>8} {'first¼':>8} {'last¼':>8} "
            f"{'accuracy':>9} {'length':>7}"
        )
        lines = [header, "-" * len(header)]
        for source in sorted(by_source):
            rows = by_source[source]
            first = [r[2] for r in rows if r[0] < early] or [r[2] for r in rows]
            last = [r[2] for r in rows if r[0] > late] or [r[2] for r in rows]
            lines.append(
                f"{source:<24} {len(rows):>6} {_mean(r[2] for r in rows):>8.3f} {_mean(first):>8.3f} "
                f"{_mean(last):>8.3f} {_mean(r[3] for r in rows):>9.3f} {_mean(r[4] for r in rows):>7.1f}"
            )
        return "\n".join(lines)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")
