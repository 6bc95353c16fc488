"""Per-data_source training metrics computed from per-sample rows.

Every metric is a ratio kept as (numerator, denominator) so that partial sums add exactly: per-rank partials,
successive batches of a logging window, and the concatenation of all rows give the same value. A metric is
reported only when its denominator is positive, so a source unseen in a window (or "length over correct"
when nothing is correct) is absent rather than 0 or NaN.

Values leave this module as :class:`MetricRow` rows (split, data_source, metric, value) and stay rows in
process (the trainer's history, evaluation, the console tables); strings are made only where they are written
(:mod:`orsta_trl.monitor.writing`): ``train/source/<data_source>/<metric>`` during training and
``eval/source/<data_source>/<metric>`` for the decoupled evaluation (:data:`TAG_PREFIX`). The report reads this
one form back from the event files (:func:`parse_tag`).

Metrics per source:

* ``reward``, ``accuracy``, ``format``: means over completions; ``part/<name>``: mean over the completions
  whose verdict reports that part. A completion whose verifier says ``not_applicable`` (a TRL reward function's
  None) is left out of these means and of the group spread, as TRL leaves it out of its reward mean and its
  advantages; it still counts in ``reason/not_applicable`` and in the length, truncation and reflection shares.
* ``reason/<code>``: share of completions with that reason (only codes that occur); ``reason/none``: share
  with no reason. The denominator is always every completion of the source in the window (see
  :func:`aggregate`), so a code seen in one batch only is not inflated.
* ``length/mean|correct|incorrect``: mean completion tokens; ``truncated/ratio|correct|incorrect``: share of
  completions with no EOS. "Correct" means ``accuracy >= correct_threshold``.
* ``reflection/ratio``: share of completions containing a reflection word (case-insensitive substring);
  ``reflection/ratio_correct|ratio_incorrect``: that share among correct / incorrect completions;
  ``reflection/accuracy_reflective|accuracy_nonreflective``: mean accuracy of each kind;
  ``reflection/count/<word>``: mean number of (non-overlapping) occurrences of the word per completion. Words
  are plain substrings: "recheck" counts inside "rechecked", "wait" inside "await".
* ``groups/zero_spread``: share of prompt groups whose rewards all equal (max == min), i.e. groups that give
  GRPO no signal. A group is the rows sharing ``group`` *and* ``data_source`` within one
  :func:`compute_metrics` call; a group of one completion counts as zero-spread. Deviation from exactness:
  when one group's rows are split across partials, each part counts as its own group, so pass whole groups
  (the trainer gathers all ranks first).
* ``tools/...`` (runs with tools): calls per rollout, per tool name, real success share, turns, iteration-limit
  share (:mod:`orsta_trl.monitor.tool_metrics`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from orsta_trl.monitor.tool_metrics import TOOL_FAMILY, TOOL_METRICS, add_tool_metrics
from orsta_trl.rewards.sample import Sample
from orsta_trl.verifiers.base import NOT_APPLICABLE

DEFAULT_REFLECTION_WORDS: tuple[str, ...] = (
    "re-check",
    "re-evaluate",
    "re-examine",
    "re-think",
    "recheck",
    "reevaluate",
    "reexamine",
    "reevaluation",
    "rethink",
    "check again",
    "think again",
    "try again",
    "verify",
    "wait",
    "yet",
)

#: Metric names of fixed depth; ``part/``, ``reason/`` and ``reflection/count/`` take one more component.
FIXED_METRICS: tuple[str, ...] = (
    "reward",
    "accuracy",
    "format",
    "length/mean",
    "length/correct",
    "length/incorrect",
    "truncated/ratio",
    "truncated/correct",
    "truncated/incorrect",
    "reflection/ratio",
    "reflection/ratio_correct",
    "reflection/ratio_incorrect",
    "reflection/accuracy_reflective",
    "reflection/accuracy_nonreflective",
    "groups/zero_spread",
)
_FAMILIES = ("part/", "reason/", "reflection/count/", TOOL_FAMILY)

#: The tag prefix of each split: tags are ``{prefix}/{data_source}/{metric}``.
TAG_PREFIX = {"train": "train/source", "eval": "eval/source"}


class MetricRow(NamedTuple):
    """One per-source value: ``split`` is ``"train"`` or ``"eval"`` (a key of :data:`TAG_PREFIX`)."""

    split: str
    source: str
    metric: str
    value: float


Key = tuple[str, str]  # (data_source, metric)
Sums = dict[Key, tuple[float, float]]  # (numerator, denominator)


def compute_metrics(
    rows: Iterable[Sample],
    correct_threshold: float = 1.0,
    reflection_words: Sequence[str] = DEFAULT_REFLECTION_WORDS,
) -> Sums:
    """``{(data_source, metric): (numerator, denominator)}`` over ``rows`` (entries may have denominator 0)."""
    words = list(dict.fromkeys(w.lower() for w in reflection_words))
    by_source: dict[str, list[Sample]] = defaultdict(list)
    for row in rows:
        by_source[row.data_source].append(row)
    out: Sums = {}
    for source, items in by_source.items():
        # every fixed metric is present, possibly with denominator 0
        acc = {
            name: [0.0, 0.0]
            for name in (*FIXED_METRICS, "reason/none", *(f"reflection/count/{w}" for w in words))
        }
        groups: dict[object, list[float]] = defaultdict(list)
        for r in items:
            split = "correct" if r.accuracy >= correct_threshold else "incorrect"
            text = r.text.lower()
            counts = [text.count(w) for w in words]
            reflective = any(counts)
            applies = r.reason != NOT_APPLICABLE
            if applies:
                _add(acc, "reward", r.reward)
                _add(acc, "accuracy", r.accuracy)
                _add(acc, "format", r.format)
                for name, value in r.parts.items():
                    _add(acc, f"part/{name}", float(value))
            _add(acc, f"reason/{r.reason}" if r.reason else "reason/none", 1.0)
            _add(acc, "length/mean", r.length)
            _add(acc, f"length/{split}", r.length)
            _add(acc, "truncated/ratio", float(r.truncated))
            _add(acc, f"truncated/{split}", float(r.truncated))
            _add(acc, "reflection/ratio", float(reflective))
            _add(acc, f"reflection/ratio_{split}", float(reflective))
            kind = "reflective" if reflective else "nonreflective"
            _add(acc, f"reflection/accuracy_{kind}", r.accuracy)
            for word, count in zip(words, counts, strict=True):
                _add(acc, f"reflection/count/{word}", count)
            if applies:
                groups[r.group].append(r.reward)
        for rewards in groups.values():
            _add(acc, "groups/zero_spread", float(max(rewards) == min(rewards)))
        add_tool_metrics(acc, items)  # tools/...: only rows from the tool loop
        out.update({(source, metric): (num, den) for metric, (num, den) in acc.items()})
    return _share_of_all(out)


def _add(acc: dict[str, list[float]], metric: str, num: float, den: float = 1.0) -> None:
    cell = acc.setdefault(metric, [0.0, 0.0])
    cell[0] += num
    cell[1] += den


def aggregate(partials: Iterable[Mapping[Key, tuple[float, float]]]) -> Sums:
    """Sum partial (numerator, denominator) dicts, e.g. per-rank or per-batch results of :func:`compute_metrics`.

    ``reason/<code>`` denominators are then reset to the source's completion count (the ``reward``
    denominator), because a partial in which a code does not occur holds no entry for it.
    """
    total: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for partial in partials:
        for key, (num, den) in partial.items():
            cell = total[key]
            cell[0] += num
            cell[1] += den
    return _share_of_all({k: (v[0], v[1]) for k, v in total.items()})


def _share_of_all(sums: Sums) -> Sums:
    for (source, metric), (num, _) in list(sums.items()):
        if metric.startswith("reason/"):
            sums[(source, metric)] = (
                num,
                sums.get((source, "length/mean"), (0.0, 0.0))[1],
            )  # every completion
    return sums


def finalize(sums: Mapping[Key, tuple[float, float]], split: str = "train") -> list[MetricRow]:
    """A :class:`MetricRow` ``(split, source, metric, num / den)`` for every entry with a positive denominator."""
    if split not in TAG_PREFIX:
        raise ValueError(f"split must be one of {list(TAG_PREFIX)}, got {split!r}")
    return [
        MetricRow(split, source, metric, num / den)
        for (source, metric), (num, den) in sorted(sums.items())
        if den > 0
    ]


def eval_metrics(
    rows: Iterable[Sample], correct_threshold: float = 1.0, reflection_words=DEFAULT_REFLECTION_WORDS
) -> list[MetricRow]:
    """The per-source metric rows (split ``eval``) over all samples (gathered from every rank).

    ``groups/zero_spread`` is left out: with one greedy completion per prompt every group is trivially flat.
    """
    metrics = finalize(compute_metrics(rows, correct_threshold, reflection_words), split="eval")
    return [row for row in metrics if row.metric != "groups/zero_spread"]


def is_metric(name: str) -> bool:
    """Whether ``name`` is a metric name this module emits (used to split tags whose source contains '/')."""
    if name in FIXED_METRICS or name in TOOL_METRICS:
        return True
    return any(name.startswith(f) and len(name) > len(f) and "/" not in name[len(f) :] for f in _FAMILIES)


def split_tag(rest: str) -> tuple[str, str]:
    """Split ``"<data_source>/<metric>"`` (the tag without its prefix) into (data_source, metric).

    The metric is the longest valid suffix (:func:`is_metric`), so a data_source may contain '/'; if none is
    valid the last component is the metric.
    """
    pieces = rest.split("/")
    for i in range(1, len(pieces)):
        metric = "/".join(pieces[i:])
        if is_metric(metric):
            return "/".join(pieces[:i]), metric
    return "/".join(pieces[:-1]), pieces[-1]


def parse_tag(tag: str) -> tuple[str, str, str] | None:
    """(split, data_source, metric) of a per-source tag (``train/source/...`` or ``eval/source/...``), else None.

    >>> parse_tag("eval/source/web/qa/length/mean"), parse_tag("train/rewards/orsta/mean")
    (('eval', 'web/qa', 'length/mean'), None)
    """
    for split, prefix in TAG_PREFIX.items():
        head = prefix + "/"
        if tag.startswith(head) and "/" in tag[len(head) :]:
            source, metric = split_tag(tag[len(head) :])
            if source and is_metric(metric):
                return split, source, metric
    return None


class SourceMonitor:
    """Accumulates :func:`compute_metrics` over a logging window; :meth:`flush` returns its rows and resets.

    ``update`` must receive rows gathered from every rank (identical on all ranks), so every rank holds the
    same accumulators and may log the same values. ``sources`` lists the expected sources (kept in
    ``self.sources``); rows of other sources are accumulated too, and unseen sources are simply absent.
    """

    def __init__(
        self,
        sources: Sequence[str] = (),
        correct_threshold: float = 1.0,
        reflection_words: Sequence[str] = DEFAULT_REFLECTION_WORDS,
        split: str = "train",
    ):
        self.sources = list(sources)
        self.correct_threshold = float(correct_threshold)
        self.reflection_words = tuple(reflection_words)
        if split not in TAG_PREFIX:
            raise ValueError(f"split must be one of {list(TAG_PREFIX)}, got {split!r}")
        self.split = split
        self._sums: Sums = {}
        self.rows_seen = 0

    def update(self, rows: Sequence[Sample]) -> None:
        rows = list(rows)
        self.rows_seen += len(rows)
        for row in rows:
            if row.data_source not in self.sources:
                self.sources.append(row.data_source)
        partial = compute_metrics(rows, self.correct_threshold, self.reflection_words)
        self._sums = aggregate([self._sums, partial])

    def peek(self) -> list[MetricRow]:
        """The current window's values, without resetting."""
        return finalize(self._sums, self.split)

    def flush(self) -> list[MetricRow]:
        values = self.peek()
        self._sums = {}
        self.rows_seen = 0
        return values
