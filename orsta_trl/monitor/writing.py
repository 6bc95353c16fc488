"""Where per-source rows become strings: TensorBoard tags, ``Trainer.log`` keys, console lines.

Per-source values travel as :class:`~orsta_trl.monitor.source_metrics.MetricRow` rows (split, data_source,
metric, value); nothing in process parses a tag back. The trainer hands ``Trainer.log`` the keys of
:func:`log_key`, which transformers' TensorBoard callback (``rewrite_logs``: ``train/`` prepended, a leading
``eval_`` turned into ``eval/``) writes as exactly :func:`tag` (``tests/test_monitor.py`` checks it against
transformers' own function). The console keeps TRL's headline numbers; per-source keys go to TensorBoard only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orsta_trl.console import source_table
from orsta_trl.monitor.source_metrics import TAG_PREFIX, MetricRow

#: ``Trainer.log`` key prefix of the prompts seen per source (TensorBoard: ``train/data/seen/<data_source>``).
SEEN_KEY = "data/seen"


def tag(row: MetricRow) -> str:
    """The TensorBoard tag of a row: ``train/source/<data_source>/<metric>`` or ``eval/source/...``.

    >>> tag(MetricRow("eval", "web/qa", "length/mean", 3.0))
    'eval/source/web/qa/length/mean'
    """
    return f"{TAG_PREFIX[row.split]}/{row.source}/{row.metric}"


def tags(rows: Iterable[MetricRow]) -> dict[str, float]:
    """``{tag: value}``: the rows as written to a file (an evaluation report)."""
    return {tag(row): row.value for row in rows}


def log_key(row: MetricRow) -> str:
    """The ``Trainer.log`` key whose TensorBoard tag is :func:`tag` (training keys without ``train/``,
    evaluation keys with ``eval_``, as transformers expects them).

    >>> log_key(MetricRow("train", "math", "reward", 1.0)), log_key(MetricRow("eval", "math", "reward", 1.0))
    ('source/math/reward', 'eval_source/math/reward')
    """
    prefix = TAG_PREFIX[row.split].partition("/")[2]
    key = f"{prefix}/{row.source}/{row.metric}"
    return key if row.split == "train" else f"{row.split}_{key}"


def log_values(rows: Iterable[MetricRow]) -> dict[str, float]:
    """The rows as ``Trainer.log`` keys and values."""
    return {log_key(row): row.value for row in rows}


def seen_values(totals: Mapping[str, int], per_prompt: int) -> dict[str, float]:
    """Prompts seen so far per source, as ``Trainer.log`` values (``per_prompt`` completions each)."""
    return {f"{SEEN_KEY}/{source}": n / per_prompt for source, n in sorted(totals.items())}


_CONSOLE_HIDDEN = (
    *(log_key(MetricRow(split, "", "", 0.0)).removesuffix("/") for split in TAG_PREFIX),
    SEEN_KEY + "/",
)


def is_console_key(key: str) -> bool:
    """Per-source keys go to TensorBoard only; the console keeps TRL's headline numbers.

    >>> is_console_key("loss"), is_console_key("source/math/reward"), is_console_key("eval_source/a/reward")
    (True, False, False)
    """
    return not key.startswith(_CONSOLE_HIDDEN)


def console_callback(printer: type) -> type:
    """``printer`` (transformers' progress or printer callback) printing one compact line per log
    (:func:`log_line`) instead of the whole dictionary, which goes to ``<output_dir>/logs.jsonl`` in full (and,
    as always, to ``trainer_state.json`` and TensorBoard)."""

    class Console(printer):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            full = {"step": state.global_step, **{k: v for k, v in logs.items() if k != "total_flos"}}
            if args.output_dir and Path(args.output_dir).is_dir():
                with (Path(args.output_dir) / LOG_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(full, default=str) + "\n")
            line = log_line(state.global_step, state.max_steps, logs)
            if line is None:
                return
            bar = getattr(self, "training_bar", None)
            bar.write(line) if bar is not None else print(line, flush=True)

    Console.__name__ = f"Console{printer.__name__}"
    return Console


#: Every log dictionary in full, one JSON line each, in the run's folder.
LOG_FILE = "logs.jsonl"
_HEADLINE = (("loss", "loss", ".4f"), ("reward", "reward", ".3f"), ("reward_std", "std", ".3f"))
_HEADLINE += (("mean_token_accuracy", "token accuracy", ".3f"), ("train_loss", "train_loss", ".4f"))
_HEADLINE += (("train_runtime", "runtime s", ".1f"),)


def log_line(step: int, max_steps: int, logs: Mapping[str, Any]) -> str | None:
    """One console line for a log dictionary: the step, TRL's headline numbers, accuracy per source; None for
    a log with nothing of its own (a lone ``epoch``).

    >>> log_line(4, 8, {"loss": 0.0123, "reward": 0.5, "source/a/accuracy": 0.75, "source/a/reward": 0.6,
    ...                 "source/b/accuracy": 0.25, "epoch": 0.5})
    'step 4/8  loss 0.0123  reward 0.500  accuracy a 0.750  b 0.250'
    >>> log_line(8, 8, {"eval_source/a/accuracy": 1.0}), log_line(2, 8, {"epoch": "0.1"})
    ('step 8/8  held-out accuracy a 1.000', None)
    """
    parts = [
        f"{label} {format(float(logs[key]), spec)}" for key, label, spec in _HEADLINE if _number(logs, key)
    ]
    for split, title in (("train", "accuracy"), ("eval", "held-out accuracy")):
        prefix = log_key(MetricRow(split, "", "", 0.0)).removesuffix("/")  # "source/", "eval_source/"
        accuracy = {
            key[len(prefix) : -len("/accuracy")]: float(value)
            for key, value in logs.items()
            if key.startswith(prefix) and key.endswith("/accuracy") and _number(logs, key)
        }
        if accuracy:
            parts.append(
                title + " " + "  ".join(f"{source} {v:.3f}" for source, v in sorted(accuracy.items()))
            )
    if not parts:
        shown = {k: v for k, v in logs.items() if is_console_key(k) and k not in ("epoch", "total_flos")}
        if not shown:
            return None
        parts = [f"{k} {format(v, '.4g') if isinstance(v, float) else v}" for k, v in shown.items()]
    return "  ".join([f"step {step}/{max_steps}", *parts])


def _number(logs: Mapping[str, Any], key: str) -> bool:
    try:
        return key in logs and logs[key] is not None and float(logs[key]) == float(logs[key])
    except (TypeError, ValueError):
        return False


def history_entries(step: int, rows: Iterable[MetricRow]) -> list[dict]:
    """The rows of one logging step as entries of a trainer's ``source_history``."""
    return [{"step": step, **row._asdict()} for row in rows]


def by_source(rows: Iterable[MetricRow]) -> dict[str, dict[str, float]]:
    """``{data_source: {metric: value}}`` of rows (one split)."""
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        table.setdefault(row.source, {})[row.metric] = row.value
    return table


def eval_summary(rows: Iterable[MetricRow]) -> str:
    """The console view of an evaluation: reward, accuracy and mean length per source."""
    columns = [
        ("reward", "reward", "7.3f"),
        ("accuracy", "accuracy", "9.3f"),
        ("length", "length/mean", "7.1f"),
    ]
    return source_table(by_source(rows), columns, indent="  ")
