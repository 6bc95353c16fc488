"""Per-source tool-use metrics of multi-turn rollouts (rows whose ``Sample.tools`` the tool loop filled).

As every source metric, each is a (numerator, denominator) pair, so per-rank partials and batches add exactly:

* ``tools/calls``: tool calls per rollout; ``tools/calls/<name>``: calls of that tool per rollout;
* ``tools/success``: share of calls that succeeded (the loop's real outcomes; denominator: calls);
* ``tools/turns``: assistant turns per rollout;
* ``tools/hit_limit``: share of rollouts whose last turn still asked for a tool (the loop stopped at
  ``max_tool_calling_iterations`` or at the completion budget).

Rows without tool data (runs without tools) add nothing, so these metrics are absent there.
"""

from __future__ import annotations

from collections.abc import Iterable

TOOL_METRICS = ("tools/calls", "tools/success", "tools/turns", "tools/hit_limit")
TOOL_FAMILY = "tools/calls/"


def add_tool_metrics(acc: dict[str, list[float]], rows: Iterable) -> None:
    """Add the tool metrics of ``rows`` (one source's samples) to ``acc`` ({metric: [num, den]})."""
    tool_rows = [r.tools for r in rows if getattr(r, "tools", None) is not None]
    if not tool_rows:
        return
    names = sorted({n for t in tool_rows for n in t.get("tool_names", ())})
    cells = {m: acc.setdefault(m, [0.0, 0.0]) for m in (*TOOL_METRICS, *(TOOL_FAMILY + n for n in names))}
    for tools in tool_rows:
        outcomes = list(tools.get("tool_outcomes", ()))
        called = list(tools.get("tool_names", ()))
        _add(cells["tools/calls"], len(outcomes))
        _add(cells["tools/success"], sum(map(bool, outcomes)), len(outcomes))
        _add(cells["tools/turns"], tools.get("turns", 0))
        _add(cells["tools/hit_limit"], float(bool(tools.get("hit_limit"))))
        for name in names:
            _add(cells[TOOL_FAMILY + name], called.count(name))


def _add(cell: list[float], num: float, den: float = 1.0) -> None:
    cell[0] += num
    cell[1] += den
