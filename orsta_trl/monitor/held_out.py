"""The end-of-run table of held-out (greedy) accuracy: the first evaluation, the last, and the gain, per source.

The first evaluation runs before the first GRPO step, so it measures the starting point (for the demo: the
supervised warm-up); the last runs after the last step. The numbers come from the decoupled evaluation
(:mod:`orsta_trl.evaluation`), never from the training reward.
"""

from __future__ import annotations

from orsta_trl.console import source_table


def held_out_gains(history: list[dict], metric: str = "accuracy") -> dict[str, dict[str, float]]:
    """Per source: ``metric`` at the first and the last evaluation, and the steps they ran at.

    Args:
        history: a trainer's ``source_history`` (``{"step", "split", "source", "metric", "value"}`` entries).
        metric: the per-source metric to compare.

    Returns:
        ``{source: {"first_step", "first", "last_step", "last", "gain"}}``; empty without evaluations.

    >>> h = [{"step": 0, "split": "eval", "source": "a", "metric": "accuracy", "value": 0.5},
    ...      {"step": 9, "split": "eval", "source": "a", "metric": "accuracy", "value": 0.75}]
    >>> held_out_gains(h)["a"]["gain"]
    0.25
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in history:
        if entry["split"] == "eval" and entry["metric"] == metric:
            series.setdefault(entry["source"], []).append((entry["step"], entry["value"]))
    table = {}
    for source, points in sorted(series.items()):
        (first_step, first), (last_step, last) = min(points), max(points)
        table[source] = {"first_step": first_step, "first": first, "last_step": last_step, "last": last,
                         "gain": last - first}  # fmt: skip
    return table


def format_gains(table: dict[str, dict[str, float]], metric: str = "accuracy") -> str:
    """The table of :func:`held_out_gains` as text, one line per source."""
    if not table:
        return ""
    any_row = next(iter(table.values()))
    columns = [
        (f"{metric} @{any_row['first_step']}", "first", "14.3f"),
        (f"{metric} @{any_row['last_step']}", "last", "14.3f"),
        ("gain", "gain", "+7.3f"),
    ]
    return source_table(table, columns)
