"""The difficulty filter (``orsta-trl filter difficulty IN OUT --model M --k 8 --keep "0 <= pass < 1"``).

V-Triune keeps only what the model sometimes, but not always, gets right: k sampled completions per record,
scored by the record's own verifier through the same :class:`~orsta_trl.rewards.router.RewardRouter` as
training, with the generation code of :mod:`orsta_trl.evaluation` (batched HF ``generate`` with sampling).
Each record gets ``extra.pass_rate`` (share of completions with accuracy >= ``correct_threshold``),
``extra.mean_reward`` and ``extra.reward_sum`` (sum of the k combined rewards); the ``--keep`` range decides
what is written. For detection the paper keeps a summed IoU reward over 16 samples at IoU 0.5 between 2 and
10: ``--k 16 --iou 0.5 --keep "2 <= reward_sum <= 10"``. Without ``--iou`` detection is scored at the
evaluation's fixed setting (``"average"``), never at the training schedule.

Resumable: every finished batch is appended (and flushed) to a cache file (default ``OUT.cache.jsonl``) keyed by
(data_source, id) and by the settings that change the scores (model, k, temperature, seed, max_new_tokens,
IoU); a rerun with the same settings skips what is cached, a half-written last line from a kill is ignored.
Each batch's sampling is seeded from (seed, its first record), so a resumed run samples what a straight run
would have, given the same batch boundaries.

Not here: generation with vLLM (HF ``generate`` only), and multi-GPU sharding.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from orsta_trl.console import source_table
from orsta_trl.errors import DataError

METRICS = {
    "pass": "pass_rate",
    "pass_rate": "pass_rate",
    "mean_reward": "mean_reward",
    "reward_sum": "reward_sum",
}
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KEEP = re.compile(rf"^\s*(?:({_NUM})\s*(<=|<|>=|>|==)\s*)?([a-z_]+)\s*(?:(<=|<|>=|>|==)\s*({_NUM}))?\s*$")


@dataclass(frozen=True)
class KeepRange:
    """A parsed ``--keep`` expression: ``[low op] metric [op high]`` (no eval)."""

    metric: str
    low: tuple | None = None  # (number, op) for "number op metric"
    high: tuple | None = None  # (op, number) for "metric op number"
    text: str = ""

    def __call__(self, values: dict) -> bool:
        x = values[self.metric]
        if self.low is not None and not OPS[self.low[1]](self.low[0], x):
            return False
        return self.high is None or OPS[self.high[0]](x, self.high[1])


def parse_keep(text: str) -> KeepRange:
    """Parse ``"0 <= pass < 1"``, ``"2 <= reward_sum <= 10"``, ``"pass_rate > 0"`` and the like.

    Args:
        text: the expression: an optional ``number op`` before, the metric (``pass``/``pass_rate``,
            ``mean_reward``, ``reward_sum``), an optional ``op number`` after.

    Returns:
        The :class:`KeepRange`.

    Raises:
        DataError: anything else, naming what is accepted.
    """
    match = _KEEP.match(text or "")
    if not match or match.group(3) not in METRICS or not (match.group(1) or match.group(5)):
        raise DataError(
            f"--keep {text!r}: expected e.g. '0 <= pass < 1' or '2 <= reward_sum <= 10' "
            f"(metrics: {sorted(METRICS)}; operators: < <= > >= ==)"
        )
    low = (float(match.group(1)), match.group(2)) if match.group(1) else None
    high = (match.group(4), float(match.group(5))) if match.group(5) else None
    return KeepRange(METRICS[match.group(3)], low, high, text)


@dataclass
class DifficultyReport:
    """Per-source kept / dropped counts and mean pass rate; cached vs generated record counts."""

    kept: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    pass_rates: dict = field(default_factory=lambda: defaultdict(list))
    cached: int = 0
    generated: int = 0

    def lines(self) -> list[str]:
        """The summary table, one line per source."""
        table = {
            source: {
                "kept": self.kept[source],
                "dropped": self.dropped[source],
                "pass": sum(self.pass_rates[source]) / len(self.pass_rates[source])
                if self.pass_rates[source]
                else 0.0,
            }
            for source in set(self.kept) | set(self.dropped)
        }
        columns = [("kept", "kept", "6d"), ("dropped", "dropped", "8d"), ("mean pass", "pass", "10.3f")]
        out = source_table(table, columns).splitlines()
        out.append(f"{self.generated} record(s) generated, {self.cached} taken from the cache")
        return out


def record_stats(accuracies: list[float], rewards: list[float], correct_threshold: float) -> dict:
    """``pass_rate``, ``mean_reward``, ``reward_sum`` of one record's k samples."""
    k = len(rewards)
    return {
        "pass_rate": sum(a >= correct_threshold for a in accuracies) / k,
        "mean_reward": sum(rewards) / k,
        "reward_sum": sum(rewards),
    }


def _read_cache(path: Path, fingerprint: str) -> dict:
    cached = {}
    if not path.exists():
        return cached
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the half-written line of a killed run
        if row.get("fingerprint") == fingerprint:
            cached[(row["data_source"], row["id"])] = row["stats"]
    return cached


def _fingerprint(settings: dict, orsta, recipe) -> str:
    """Everything the cached statistics depend on."""
    values = [
        *settings.values(),
        orsta.prompt_pool,
        orsta.correct_threshold,
        orsta.min_pixels if recipe else None,
        orsta.max_pixels if recipe else None,
        repr(orsta.reward_settings()),
    ]
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def _measure(session, todo, done: dict, cache_path: Path, fingerprint: str, settings: dict, report, batch_size: int,
             show_progress: bool):  # fmt: skip
    """Sample k completions of each record in ``todo``, score them, and append each batch's stats to the cache."""
    import torch
    from tqdm.auto import tqdm

    k, seed = settings["k"], settings["seed"]
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    with cache_path.open("a", encoding="utf-8") as handle, tqdm(
        total=report.cached + len(todo), initial=report.cached, desc="difficulty", unit="rec", disable=not show_progress
    ) as bar:  # fmt: skip
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            key = f"{seed}\x00{batch[0].data_source}\x00{batch[0].id}".encode()
            torch.manual_seed(int(hashlib.sha256(key).hexdigest()[:15], 16))
            samples = session.scorer(
                session.model, session.processor, batch, max_new_tokens=settings["max_new_tokens"],
                batch_size=len(batch), num_samples=k, temperature=settings["temperature"],
                iou=settings["iou"] or "average",
            )  # fmt: skip
            for i, record in enumerate(batch):
                group = samples[i * k : (i + 1) * k]
                stats = record_stats(
                    [s.accuracy for s in group], [s.reward for s in group], session.orsta.correct_threshold
                )
                done[record.key] = stats
                row = {"fingerprint": fingerprint, "data_source": record.data_source, "id": record.id}
                handle.write(json.dumps({**row, "stats": stats}) + "\n")
            handle.flush()
            bar.update(len(batch))


def filter_difficulty(
    src: str | Path,
    out: str | Path,
    *,
    model: str,
    k: int = 8,
    keep: str = "0 <= pass < 1",
    iou: float | None = None,
    max_new_tokens: int = 256,
    batch_size: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
    recipe: str | None = None,
    cache: str | Path | None = None,
    show_progress: bool = True,
) -> DifficultyReport:
    """Sample k completions per record, score them, write ``extra`` stats and keep the ``keep`` range.

    Args:
        src: a dataset file (JSONL or Parquet).
        out: the ``.jsonl`` to write (kept records, with ``extra.pass_rate``, ``mean_reward``, ``reward_sum``).
        model: the policy to measure with (a folder or hub id; a LoRA adapter folder works too).
        k: completions per record.
        keep: the range to keep, see :func:`parse_keep`.
        iou: a fixed IoU threshold for detection (None: the evaluation's ``"average"``).
        max_new_tokens: generation length.
        batch_size: records per generation batch (``batch_size * k`` sequences).
        temperature: sampling temperature.
        seed: sampling seed.
        recipe: take pixel bounds, reward settings and ``correct_threshold`` from this recipe.
        cache: the resume cache (default ``OUT.cache.jsonl``).
        show_progress: a tqdm bar with the time left.

    Returns:
        The :class:`DifficultyReport`.
    """
    from orsta_trl.data.filters import read_with_raw, write_records
    from orsta_trl.evaluation.offline import offline_session
    from orsta_trl.recipe import orsta_config_from

    if k < 1 or batch_size < 1:
        raise DataError(f"k and batch_size must be >= 1, got k={k}, batch_size={batch_size}")
    rule = parse_keep(keep)
    orsta_config_from(recipe)  # the recipe's own verifiers join the registry before its records load
    pairs = read_with_raw(src)
    out = Path(out)
    cache_path = Path(cache) if cache else out.with_name(out.name + ".cache.jsonl")
    settings = dict(
        model=str(model), k=k, temperature=temperature, seed=seed, max_new_tokens=max_new_tokens, iou=iou
    )
    with offline_session(model, [r for _, r in pairs], recipe, load=False) as cached_only:
        fingerprint = _fingerprint(settings, cached_only.orsta, recipe)
        done = _read_cache(cache_path, fingerprint)
        records = cached_only.records  # measured on the prompts training will see (prompt pool)
    todo = [r for r in records if r.key not in done]
    report = DifficultyReport(cached=len(records) - len(todo), generated=len(todo))
    if todo:
        with offline_session(model, [r for _, r in pairs], recipe) as session:
            _measure(
                session, todo, done, cache_path, fingerprint, settings, report, batch_size, show_progress
            )
    kept = []
    for (raw, original), record in zip(pairs, records, strict=True):
        stats = done[record.key]
        report.pass_rates[record.data_source].append(stats["pass_rate"])
        if rule(stats):
            report.kept[record.data_source] += 1
            kept.append((raw, original))
        else:
            report.dropped[record.data_source] += 1
    write_records(kept, out, extra={key: done[key] for key in done})
    return report
