"""The end-of-run table of held-out (greedy) accuracy: the first evaluation, the last, and the gain, per source.

The first evaluation runs before the first GRPO step, so it measures the starting point (for the demo: the
supervised warm-up); the last runs after the last step. The numbers come from the decoupled evaluation
(:mod:`orsta_trl.evaluation`), never from the training reward.
"""

from __future__ import annotations

from orsta_trl.monitor.source_metrics import parse_tag


def held_out_gains(history: list[dict], metric: str = "accuracy") -> dict[str, dict[str, float]]:
    """Per source: ``metric`` at the first and the last evaluation, and the steps they ran at.

    Args:
        history: a trainer's ``source_history`` (``{"step", "tag", "value"}`` entries, train and eval).
        metric: the per-source metric to compare.

    Returns:
        ``{source: {"first_step", "first", "last_step", "last", "gain"}}``; empty without evaluations.

    >>> h = [{"step": 0, "tag": "eval/source/a/accuracy", "value": 0.5},
    ...      {"step": 9, "tag": "eval/source/a/accuracy", "value": 0.75}]
    >>> held_out_gains(h)["a"]["gain"]
    0.25
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in history:
        split, source, name = parse_tag(entry["tag"])
        if split == "eval" and name == metric:
            series.setdefault(source, []).append((entry["step"], entry["value"]))
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
    header = (
        f"{'data_source':<24} {metric + ' @' + str(any_row['first_step']):>14} "
        f"{metric + ' @' + str(any_row['last_step']):>14} {'gain':>7}"
    )
    lines = [header, "-" * len(header)]
    for source, row in table.items():
        lines.append(f"{source:<24} {row['first']:>14.3f} {row['last']:>14.3f} {row['gain']:>+7.3f}")
    return "\n".join(lines)
