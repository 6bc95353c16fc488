"""The reward function TRL sees: route each completion to its record's verifier and combine the verdict.

For every completion, the record named by the row's ``data_source`` and ``id`` gives the verifier, its
prepared ground truth and params, and the weights; the router returns
(Σ weight_k × part_k) / (Σ weight_k) per completion and keeps every verdict in ``last`` for the monitor.

* Training progress (global step / max steps) comes from TRL's ``trainer_state`` on every call, so the
  dynamic IoU threshold is right after a resume; the current threshold is logged every step.
* Identical (record, completion) pairs are scored once per batch.
* Verifiers marked ``isolated`` hand their slow jobs (math: the (gold, answer) pairs that need sympy) to a
  :class:`WorkerPool`, de-duplicated across the batch and each under ``reward_timeout_s``; a job past the limit
  scores 0 with ``reason="timeout"``. Everything else runs here.
* Nothing a completion contains can raise: a verifier bug scores 0 with ``reason="verifier_error:..."``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orsta_trl.data.records import Record
from orsta_trl.verifiers.base import (
    DEFAULT_IOU_SCHEDULE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    Context,
    Verdict,
)
from orsta_trl.verifiers.pool import Outcome, Task, WorkerPool
from orsta_trl.verifiers.schedule import iou_threshold_at


@dataclass(frozen=True)
class RewardSettings:
    """The recipe's reward knobs (see :class:`orsta_trl.recipe.OrstaConfig` for their meaning)."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    iou_schedule: tuple[tuple[float, float], ...] = DEFAULT_IOU_SCHEDULE
    reward_timeout_s: float = 2.0
    reward_workers: int = 0
    rewrite_embedder: str | None = None


@dataclass(frozen=True)
class Scored:
    """One completion's outcome: the record it answers, the verdict, and the combined reward."""

    data_source: str
    id: str
    verifier: str
    reward: float
    verdict: Verdict

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "data_source": self.data_source,
            "verifier": self.verifier,
            "reward": self.reward,
            **self.verdict.as_dict(),
        }


@dataclass
class RewardRouter:
    """Callable with TRL's reward-function protocol; also usable directly through :meth:`score`."""

    records: dict[tuple[str, str], Record]
    settings: RewardSettings = field(default_factory=RewardSettings)
    last: list[Scored] = field(default_factory=list)
    last_seconds: float = 0.0

    def __post_init__(self):
        self.__name__ = "orsta"  # TRL names the reward metric after it: rewards/orsta/mean
        self._pool: WorkerPool | None = None

    @classmethod
    def from_records(cls, records: Iterable[Record], settings: RewardSettings | None = None) -> RewardRouter:
        return cls({r.key: r for r in records}, settings or RewardSettings())

    def add_records(self, records: Iterable[Record], split: str | None = None) -> None:
        """Add records; a ``split`` (e.g. "eval") keeps them apart from training records with the same ids."""
        self.records.update({self.key(r, split): r for r in records})

    @staticmethod
    def key(record: Record, split: str | None = None) -> tuple:
        return record.key if split is None else (*record.key, split)

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            workers = self.settings.reward_workers or None
            self._pool = WorkerPool(self.settings.reward_timeout_s, workers=workers)
        return self._pool

    def start(self) -> None:
        """Check every verifier in use is ready, and start the worker pool when any of them runs isolated."""
        verifiers = {r.reward.verifier.name: r.reward.verifier for r in self.records.values()}
        s = self.settings
        ctx = Context(1.0, (), s.min_pixels, s.max_pixels, s.iou_schedule, None, s.rewrite_embedder)
        for verifier in verifiers.values():
            verifier.check_ready(ctx)
        if any(v.isolated for v in verifiers.values()):
            self.pool.start()

    def threshold(self, progress: float) -> float:
        return iou_threshold_at(progress, self.settings.iou_schedule)

    def context(self, record: Record, progress: float, iou_override=None) -> Context:
        s = self.settings
        return Context(
            progress,
            tuple(record.image_sizes),
            s.min_pixels,
            s.max_pixels,
            s.iou_schedule,
            iou_override,
            s.rewrite_embedder,
        )

    def score(
        self, keys: Sequence[tuple[str, str]], texts: Sequence[str], progress: float = 1.0, iou_override=None
    ) -> list[Scored]:
        """Score ``texts[i]`` against record ``keys[i]``; unknown keys raise KeyError naming them."""
        started = time.perf_counter()
        unique: dict[tuple, int] = {}
        order = [unique.setdefault((key, text), len(unique)) for key, text in zip(keys, texts, strict=True)]
        verdicts: list[Verdict | None] = [None] * len(unique)
        waiting: list[tuple[int, str, Record, Context, Task]] = []
        for (key, text), slot in unique.items():
            record = self.records.get(tuple(key))
            if record is None:
                raise KeyError(f"no record with data_source={key[0]!r} and id={key[1]!r}")
            spec = record.reward
            ctx = self.context(record, progress, iou_override)
            job = _safe_slow_job(spec, text, ctx) if spec.verifier.isolated else None
            if job is None:
                verdicts[slot] = _safe_score(spec, text, ctx)
            else:
                waiting.append((slot, text, record, ctx, Task(spec.verifier.name, job)))
        if waiting:
            jobs = list(dict.fromkeys(task for *_, task in waiting))
            results = dict(zip(jobs, self.pool.map(jobs), strict=True))
            for slot, text, record, ctx, task in waiting:
                result = results[task]
                verdicts[slot] = (
                    _failed(record.reward, result)
                    if isinstance(result, Outcome)
                    else _safe_score(record.reward, text, ctx, slow=result)
                )
        scored = []
        for key, slot in zip(keys, order, strict=True):
            record, verdict = self.records[tuple(key)], verdicts[slot]
            reward = record.reward.combine(verdict)
            scored.append(Scored(record.data_source, record.id, record.reward.verifier.name, reward, verdict))
        self.last_seconds = time.perf_counter() - started
        return scored

    def __call__(
        self,
        prompts=None,
        completions=None,
        completion_ids=None,
        trainer_state=None,
        log_metric=None,
        log_extra=None,
        data_source=None,
        id=None,
        **_unused,
    ) -> list[float]:
        texts = [completion_text(c) for c in completions]
        progress = training_progress(trainer_state)
        self.last = self.score(list(zip(data_source, id, strict=True)), texts, progress)
        if log_metric is not None:
            log_metric("reward/iou_threshold", self.threshold(progress))
            log_metric("reward/seconds", self.last_seconds)
        if log_extra is not None:
            log_extra("reason", [s.verdict.reason or "" for s in self.last])
        return [s.reward for s in self.last]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"] = None
        return state


def _safe_score(spec, text: str, ctx: Context, **slow) -> Verdict:
    try:
        return spec.verifier.score(text, spec.gold, spec.params, ctx, **slow)
    except Exception as exc:  # a verifier bug must never crash training
        return _failed(spec, f"verifier_error:{type(exc).__name__}")


def _safe_slow_job(spec, text: str, ctx: Context):
    try:
        return spec.verifier.slow_job(text, spec.gold, spec.params, ctx)
    except Exception:  # let score() report the problem in-process
        return None


def _failed(spec, reason: str) -> Verdict:
    """Zero for every part, with the reason (a timeout, a dead worker, a verifier bug)."""
    return Verdict(0.0, 0.0, {name: 0.0 for name in spec.verifier.parts}, str(reason))


def training_progress(trainer_state) -> float:
    """global_step / max_steps from TRL's trainer state (1.0 outside training)."""
    if trainer_state is None or not getattr(trainer_state, "max_steps", 0):
        return 1.0
    return min(1.0, max(0.0, trainer_state.global_step / trainer_state.max_steps))


def messages_text(messages, sep: str = "") -> str:
    """The text of a string or of chat messages (string contents, or the text of their parts), joined by ``sep``.

    >>> messages_text([{"role": "assistant", "content": "a"}, {"role": "user", "content": [{"type": "image",
    ...     "text": None}, {"type": "text", "text": "b"}]}], sep="|")
    'a|b'
    """
    if isinstance(messages, str):
        return messages
    pieces = []
    for message in messages or []:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, list):
            pieces.extend(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        elif content is not None:
            pieces.append(str(content))
    return sep.join(pieces)


def completion_text(completion) -> str:
    """The text of a TRL completion: a string, or a list of messages whose contents are joined."""
    return messages_text(completion)
