"""Asking the judges for one batch: the router's side of the ``judge`` verifier.

The ``judge`` verifier's grader (the verifier contract's grader seam, ``grader = "judge"``): the router hands
:meth:`Judging.ask` every judge request of a batch, ``((judge name, prompt), data_source)``.
Identical (judge, prompt) pairs, i.e. the same record and answer, are sent once per batch; with the judge's
``cache: N`` the last N replies are kept across steps (only replies: a failure is asked again next time).
Each judge's backend is called once per batch with its distinct prompts. What comes back per request is the
reply text or a :class:`~orsta_trl.rewards.judges.JudgeFailure`, plus :class:`JudgeStats` for the logs:
seconds and failures per data_source (a judge call's seconds are shared among the sources in proportion to the
prompts each one sent), requests sent and cache hits per judge.

Before training, :func:`check_judges` fails with every record that names a judge the recipe does not define
(a :class:`~orsta_trl.data.records.DatasetError` naming the file, source, record and field), then asks each
judge in use whether it is ready (a :class:`~orsta_trl.errors.NotReady` otherwise).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orsta_trl.data.records import DatasetError, Record, RecordError
from orsta_trl.keys import unknown_key_message
from orsta_trl.rewards.judges import JudgeConfig, JudgeFailure, close_backend, get_backend, judge_configs
from orsta_trl.verifiers.base import RewardSettings
from orsta_trl.verifiers.judge import NO_REPLY_REASONS

Request = tuple[tuple[str, str], str]  # ((judge name, prompt), data_source)


@dataclass
class JudgeStats:
    """What one batch cost: per data_source ``seconds`` and ``failures``; per judge ``requests`` and ``cache_hits``."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    failures: Counter = field(default_factory=Counter)
    requests: Counter = field(default_factory=Counter)
    cache_hits: Counter = field(default_factory=Counter)

    def metrics(self, sources: Iterable[str], judges: Iterable[str]) -> dict[str, float]:
        """``judge/<source>/seconds|failures`` and ``judge/<name>/requests|cache_hits``, zeros included, so
        every rank logs the same keys whatever it happened to score."""
        out: dict[str, float] = {}
        for source in sources:
            out[f"judge/{source}/seconds"] = float(self.seconds.get(source, 0.0))
            out[f"judge/{source}/failures"] = float(self.failures.get(source, 0))
        for name in judges:
            out[f"judge/{name}/requests"] = float(self.requests.get(name, 0))
            out[f"judge/{name}/cache_hits"] = float(self.cache_hits.get(name, 0))
        return out


def is_judged(record: Record) -> bool:
    return record.reward.verifier.grader == "judge"


def judged_sources(records: Iterable[Record]) -> list[str]:
    return sorted({r.data_source for r in records if is_judged(r)})


class Judging:
    """The router's judge caller. Holds only per-judge reply caches; backends live per process
    (:func:`~orsta_trl.rewards.judges.get_backend`), so the router stays picklable."""

    def __init__(self, settings: RewardSettings):
        self.configs: dict[str, JudgeConfig] = judge_configs(dict(settings.judges))
        self._caches: dict[str, OrderedDict] = {name: OrderedDict() for name in self.configs}

    def ask(self, requests: Sequence[Request]) -> tuple[list[str | JudgeFailure], JudgeStats]:
        """The reply (or failure) for each request, in order, and the batch's stats."""
        stats = JudgeStats()
        replies: dict[tuple[str, str], str | JudgeFailure] = {}
        pending: dict[str, dict[str, None]] = defaultdict(dict)
        sources_of: dict[tuple[str, str], list[str]] = defaultdict(list)
        for (name, prompt), source in requests:
            key = (name, prompt)
            sources_of[key].append(source)
            if key in replies or prompt in pending.get(name, ()):  # asked already in this batch
                continue
            cache = self._caches.get(name)
            if cache is not None and prompt in cache:
                cache.move_to_end(prompt)
                replies[key] = cache[prompt]
                stats.cache_hits[name] += 1
            else:
                pending[name][prompt] = None
        for name, prompts in pending.items():
            prompts = list(prompts)
            started = time.perf_counter()
            answered = self._call(name, prompts)
            seconds = time.perf_counter() - started
            stats.requests[name] += len(prompts)
            shares = Counter(sources_of[(name, p)][0] for p in prompts)
            for source, n in shares.items():
                stats.seconds[source] += seconds * n / len(prompts)
            for prompt, reply in zip(prompts, answered, strict=True):
                replies[(name, prompt)] = reply
                self._remember(name, prompt, reply)
        out = [replies[key] for key, _ in requests]
        for (_, source), reply in zip(requests, out, strict=True):
            if isinstance(reply, JudgeFailure):
                stats.failures[source] += 1
        return out, stats

    def _call(self, name: str, prompts: list[str]) -> list[str | JudgeFailure]:
        config = self.configs.get(name)
        if config is None:  # records are checked before training; this is a record added later
            return [JudgeFailure("judge_error", f"no judge {name!r} in the recipe")] * len(prompts)
        try:
            replies = get_backend(config).generate(prompts)
        except Exception as exc:  # a judge failure never crashes training
            return [JudgeFailure("judge_error", f"{type(exc).__name__}: {exc}")] * len(prompts)
        if len(replies) != len(prompts):
            return [JudgeFailure("judge_error", "the backend lost replies")] * len(prompts)
        return replies

    def _remember(self, name: str, prompt: str, reply) -> None:
        config = self.configs.get(name)  # a judge missing from the recipe was answered with a judge_error
        size = config.cache if config is not None else 0
        if size and not isinstance(reply, JudgeFailure):
            cache = self._caches[name]
            cache[prompt] = reply
            while len(cache) > size:
                cache.popitem(last=False)

    def close(self) -> None:
        """Release every judge's model or connections in this process."""
        for config in self.configs.values():
            close_backend(config)


def check_judges(records: Iterable[Record], settings: RewardSettings) -> list[str]:
    """Raise before training: DatasetError for records naming an undefined judge, NotReady for a judge in use
    that cannot answer (a model that does not load, a server that does not answer). Return the judges in use."""
    judged = [r for r in records if is_judged(r)]
    if not judged:
        return []
    configs = judge_configs(dict(settings.judges))
    errors, used = [], []
    for record in judged:
        name = record.reward.params.judge
        if name in configs:
            used.append(name)
            continue
        defined = sorted(configs) or ["(none: the recipe has no judges:)"]
        errors.append(
            RecordError(
                record.location or "records",
                record.data_source,
                record.id,
                "reward.params.judge",
                unknown_key_message("judge", name, defined) + "; define it under the recipe's judges:",
            )
        )
    if errors:
        raise DatasetError(errors)
    used = list(dict.fromkeys(used))
    for name in used:
        get_backend(configs[name]).check_ready()
    return used


def skipped(reason: str | None, settings: RewardSettings) -> bool:
    """Whether a sample's reward goes to TRL as None: ``judge_failure: skip`` and the judge gave no reply."""
    return settings.judge_failure == "skip" and reason in NO_REPLY_REASONS
