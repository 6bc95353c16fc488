"""A run's per-source summary table (reward, accuracy, completion length), printed at the end of training.

It accumulates the rows gathered from every rank as per-(step, source) sums (small: steps x sources, whatever
the batch size); the table shows the first and last quarter of the run so that a user sees at a glance which
sources moved. The sums are saved in every checkpoint (:data:`FILENAME`, see :meth:`SourceSummary.save`) and
read back on resume, so that the table of a resumed run still covers the whole run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from orsta_trl.console import source_table

#: The file holding the summary's sums inside a ``checkpoint-*`` folder.
FILENAME = "orsta_summary.json"


@dataclass
class SourceSummary:
    #: (step, data_source) -> [n, Σ reward, Σ accuracy, Σ length]
    sums: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    #: data_source -> completions scored over the whole run (kept with the sums, derived from them on load)
    totals: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        for (_, source), acc in self.sums.items():
            self.totals[source] = self.totals.get(source, 0) + int(acc[0])

    def update(self, step: int, rows) -> None:
        """``rows``: the Samples of one step (gathered from every rank)."""
        for row in rows:
            self.totals[row.data_source] = self.totals.get(row.data_source, 0) + 1
            acc = self.sums.setdefault((int(step), row.data_source), [0, 0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += float(row.reward)
            acc[2] += float(row.accuracy)
            acc[3] += int(row.length)

    def save(self, folder: str | Path) -> Path:
        """Write the sums to ``folder/orsta_summary.json`` (atomically); return the file's path."""
        path = Path(folder) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(
            json.dumps([[step, source, *acc] for (step, source), acc in sorted(self.sums.items())])
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> SourceSummary:
        """The summary saved in ``folder`` (a checkpoint); empty when it holds none (an older checkpoint)."""
        path = Path(folder) / FILENAME
        if not path.is_file():
            return cls()
        return cls(
            {(int(step), source): [int(n), *sums] for step, source, n, *sums in json.loads(path.read_text())}
        )

    def table(self) -> str:
        if not self.sums:
            return "(no completions were scored)"
        steps = [step for step, _ in self.sums]
        first_step, last_step = min(steps), max(steps)
        span = max(1, last_step - first_step + 1)
        early = first_step + span / 4
        late = last_step - span / 4
        table = {}
        for source in sorted({s for _, s in self.sums}):
            rows = [(step, acc) for (step, s), acc in sorted(self.sums.items()) if s == source]
            first = [acc for step, acc in rows if step < early] or [acc for _, acc in rows]
            last = [acc for step, acc in rows if step > late] or [acc for _, acc in rows]
            every = [acc for _, acc in rows]
            table[source] = {"n": _n(every), "reward": _mean(every, 1), "first": _mean(first, 1),
                             "last": _mean(last, 1), "accuracy": _mean(every, 2), "length": _mean(every, 3)}  # fmt: skip
        columns = [("n", "n", "6d"), ("reward", "reward", "8.3f"), ("first¼", "first", "8.3f"),
                   ("last¼", "last", "8.3f"), ("accuracy", "accuracy", "9.3f"), ("length", "length", "7.1f")]  # fmt: skip
        return source_table(table, columns)


def _n(sums) -> int:
    return int(sum(acc[0] for acc in sums))


def _mean(sums, index: int) -> float:
    n = _n(sums)
    return sum(acc[index] for acc in sums) / n if n else float("nan")
