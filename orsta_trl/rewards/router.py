"""The reward function TRL sees: route each completion to its record's verifier and combine the verdict.

For every completion the record gives the verifier, its prepared ground truth and params, and the weights; the
router returns one :class:`~orsta_trl.rewards.sample.Sample` per completion, whose ``reward`` is
(Σ weight_k × part_k) / (Σ weight_k) (:func:`~orsta_trl.verifiers.reward.combine`). The samples go back to the
caller that asked for them: :meth:`RewardRouter.score` returns them, and :meth:`RewardRouter.reward_function`
hands each TRL call's samples to a callback (the trainer's monitor). The router keeps no per-call state.

* Training progress (global step / max steps) comes from TRL's ``trainer_state`` on every call, so the
  dynamic IoU threshold is right after a resume; the current threshold is logged every step.
* Identical (record, completion, rollout) triples are scored once per batch.
* Verifiers marked ``isolated`` hand their slow jobs (math: the (gold, answer) pairs that need sympy) to a
  :class:`~orsta_trl.rewards.pool.WorkerPool`, de-duplicated across the batch, each under
  ``reward_timeout_s`` of CPU time; a job past the limit scores 0 with ``reason="timeout"``. Everything else
  runs here.
* Verifiers graded from outside (the verifier contract's ``grader`` seam: a model judge, a TRL batch reward
  function) build one request per completion; the router collects a batch's requests per grader and asks each
  once. The judges' grader is :class:`~orsta_trl.rewards.judging.Judging` (each distinct prompt once, each judge
  called once per batch); any other graded verifier answers its own batch (``Verifier.grade``). The reply reaches
  the verifier as ``score(..., reply=)``. A grader that gives no reply (:class:`GraderFailure`) scores 0 with its
  reason (``judge_timeout``, ``judge_error``), which reaches TRL as None under ``judge_failure: skip``. The
  judges' seconds and failures per data_source are logged (``judge/<data_source>/seconds|failures``).
* A verdict with reason ``not_applicable`` (a TRL reward function's None) reaches TRL as None, as in TRL.
* Nothing a completion contains can raise: a verifier bug scores 0 with ``reason="verifier_error:..."``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from orsta_trl.console import say
from orsta_trl.data.chat import messages_text
from orsta_trl.data.records import Record
from orsta_trl.errors import DataError
from orsta_trl.rewards.judging import JudgeStats, Judging, check_judges, judged_sources, skipped
from orsta_trl.rewards.pool import Outcome, Task, WorkerPool
from orsta_trl.rewards.rollout import read_rollout
from orsta_trl.rewards.sample import Sample
from orsta_trl.verifiers.base import NOT_APPLICABLE, Context, GraderFailure, RewardSettings, Verdict
from orsta_trl.verifiers.registry import BUILT_IN, worker_reference
from orsta_trl.verifiers.reward import combine
from orsta_trl.verifiers.schedule import iou_threshold_at
from orsta_trl.verifiers.user import where_it_runs

#: Called with each TRL call's samples and the call's ``prompts`` and ``completion_ids``.
SampleSink = Callable[..., None]


class RewardRouter:
    """Scores completions against records; callable with TRL's reward-function protocol.

    Args:
        records: the records that TRL rows name by (``data_source``, ``id``).
        settings: the run's reward settings (pixel bounds, IoU schedule, time limit, workers).
    """

    def __init__(self, records: Iterable[Record] = (), settings: RewardSettings | None = None):
        self.__name__ = "orsta"  # TRL names the reward metric after it: rewards/orsta/mean
        self.records: dict[tuple[str, str], Record] = {r.key: r for r in records}
        self.settings = settings or RewardSettings()
        self._pool: WorkerPool | None = None
        self.judging = Judging(self.settings)
        #: The graders the rewards layer provides, by the name a verifier gives in ``grader``.
        self.graders = {"judge": self.judging}
        self.judged_sources = judged_sources(self.records.values())

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(
                self.settings.reward_timeout_s, workers=self.settings.reward_workers or None
            )
        return self._pool

    def start(self, also: Iterable[Record] = (), *, ready: list | None = None) -> WorkerPool | None:
        """Check that every verifier in use (by the router's records and ``also``, e.g. evaluation records) is
        ready, and start the worker pool when any of them runs isolated; return the pool (None without one).
        ``ready``: the verifiers :func:`check_ready` already returned for these records (not checked again)."""
        verifiers = (
            ready if ready is not None else check_ready([*self.records.values(), *also], self.settings)
        )
        for verifier in verifiers:
            if verifier.name not in BUILT_IN:
                say(f"verifier {verifier.name!r} runs {where_it_runs(verifier)}")
        if not any(v.isolated for v in verifiers):
            return None
        self.pool.start()
        return self.pool

    def threshold(self, progress: float) -> float:
        return iou_threshold_at(progress, self.settings.iou_schedule)

    def context(self, record: Record, progress: float = 1.0, iou_override=None, rollout=None) -> Context:
        return Context(progress, tuple(record.image_sizes), self.settings, iou_override, rollout)

    def lookup(self, keys: Sequence[tuple[str, str]]) -> list[Record]:
        """The records named by (data_source, id) keys; an unknown key is a DataError naming it."""
        found = []
        for key in keys:
            record = self.records.get(tuple(key))
            if record is None:
                raise DataError(f"no record with data_source={key[0]!r} and id={key[1]!r}")
            found.append(record)
        return found

    def score(
        self,
        records: Sequence[Record],
        texts: Sequence[str],
        progress: float = 1.0,
        *,
        iou_override=None,
        rollouts: Sequence[Mapping | None] | None = None,
    ) -> list[Sample]:
        """Score ``texts[i]`` against ``records[i]``; one :class:`Sample` per completion, in order.

        ``records`` need not be the router's own (evaluation scores its held-out records here). ``rollouts``
        gives per-completion generation data for the verifiers' context (the tool loop's real outcomes).
        """
        return self._score(records, texts, progress, iou_override=iou_override, rollouts=rollouts)[0]

    def _score(self, records, texts, progress=1.0, *, iou_override=None, rollouts=None):
        """:meth:`score`, plus the batch's :class:`~orsta_trl.rewards.judging.JudgeStats`."""
        rollouts = [None] * len(texts) if rollouts is None else list(rollouts)
        unique: dict[tuple, int] = {}
        order = [
            unique.setdefault((id(record), text, _rollout_key(rollout)), len(unique))
            for record, text, rollout in zip(records, texts, rollouts, strict=True)
        ]
        firsts: dict[int, tuple[Record, str, Mapping | None]] = {}
        for slot, triple in zip(order, zip(records, texts, rollouts, strict=True), strict=True):
            firsts.setdefault(slot, triple)
        verdicts: list[Verdict | None] = [None] * len(unique)
        waiting: list[tuple[int, str, Record, Context, Task]] = []
        # per grader the rewards layer provides (the judges); a verifier that grades itself is its own group, even
        # when two user verifiers give the same grader name
        graded: dict[tuple[str, int], list[tuple[int, str, Record, Context, object]]] = {}
        for slot, (record, text, rollout) in firsts.items():
            spec = record.reward
            ctx = self.context(record, progress, iou_override, rollout)
            job = _safe_slow_job(spec, text, ctx) if spec.verifier.isolated else None
            try:
                request = _request(record, text)
            except Exception as exc:  # building the grader's request failed: our bug, not the grader's
                verdicts[slot] = _failed(spec, f"verifier_error:{type(exc).__name__}")
                continue
            if request is not None:
                grader = spec.verifier.grader
                key = (grader, 0 if grader in self.graders else id(spec.verifier))
                graded.setdefault(key, []).append((slot, text, record, ctx, request))
            elif job is None:
                verdicts[slot] = _safe_score(spec, text, ctx)
            else:
                task = Task(worker_reference(spec.verifier), job, spec.verifier.job_affinity(job))
                waiting.append((slot, text, record, ctx, task))
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
        stats = JudgeStats()
        for (name, _), items in graded.items():
            replies, batch_stats = self._ask(name, items)
            stats = batch_stats or stats
            for (slot, text, record, ctx, _), reply in zip(items, replies, strict=True):
                verdicts[slot] = (
                    _failed(record.reward, reply.reason)
                    if isinstance(reply, GraderFailure)
                    else _safe_score(record.reward, text, ctx, reply=reply)
                )
        samples = [
            _sample(record, text, verdicts[slot], rollout)
            for record, text, slot, rollout in zip(records, texts, order, rollouts, strict=True)
        ]
        return samples, stats

    def _ask(self, name: str, items: list) -> tuple[list, JudgeStats | None]:
        """One grader's replies to a batch's requests (and the judges' stats); a grader that raises fails them all."""
        grader = self.graders.get(name)
        try:
            if grader is not None:
                return grader.ask([(request, record.data_source) for _, _, record, _, request in items])
            # a verifier that is its own grader (a TRL reward function); one verifier per group
            verifier = items[0][2].reward.verifier
            replies = verifier.grade([request for *_, request in items])
            if len(replies) != len(items):
                raise ValueError(f"{len(replies)} replies for {len(items)} requests")
            return replies, None
        except Exception as exc:  # a grader's bug never crashes training
            return [GraderFailure(f"verifier_error:{type(exc).__name__}", str(exc))] * len(items), None

    def score_batch(
        self,
        completions,
        data_source,
        id,  # noqa: A002 (TRL passes the dataset column by its name)
        trainer_state=None,
        log_metric=None,
        log_extra=None,
        rollouts: bool = False,
        **_unused,
    ) -> list[Sample]:
        """Score one TRL reward call (its keyword arguments as TRL passes them); log the threshold and time.

        With ``rollouts`` (a run with tools), each completion is a multi-turn rollout: its transcript is scored
        and its real tool outcomes go to the verifier context (:func:`~orsta_trl.rewards.rollout.read_rollout`).
        """
        started = time.perf_counter()
        if rollouts:
            texts, slots = map(list, zip(*(read_rollout(c) for c in completions), strict=True))
        else:
            texts, slots = [completion_text(c) for c in completions], None
        progress = training_progress(trainer_state)
        keys = list(zip(data_source, id, strict=True))
        samples, stats = self._score(self.lookup(keys), texts, progress, rollouts=slots)
        if log_metric is not None:
            log_metric("reward/iou_threshold", self.threshold(progress))
            log_metric("reward/seconds", time.perf_counter() - started)
            if self.judged_sources:
                for name, value in stats.metrics(self.judged_sources, self.judging.configs).items():
                    log_metric(name, value)
        if log_extra is not None:
            log_extra("reason", [s.reason or "" for s in samples])
        return samples

    def reward_function(self, on_samples: SampleSink, rollouts: bool = False) -> Callable[..., list[float]]:
        """A TRL reward function that hands each call's samples to ``on_samples(samples, prompts=,
        completion_ids=)`` before returning the rewards: how the trainer's monitor gets its verdicts.
        ``rollouts``: the completions come from TRL's tool loop (see :meth:`score_batch`)."""

        def orsta(prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float]:
            samples = self.score_batch(completions, rollouts=rollouts, **kwargs)
            on_samples(samples, prompts=prompts, completion_ids=completion_ids)
            return self.trl_rewards(samples)

        return orsta

    def trl_rewards(self, samples: Sequence[Sample]) -> list[float | None]:
        """The rewards TRL gets: each sample's, or None for a sample that does not apply (``not_applicable``) or
        that ``judge_failure: skip`` leaves out."""
        return [
            None if s.reason == NOT_APPLICABLE or skipped(s.reason, self.settings) else s.reward
            for s in samples
        ]

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        """TRL's reward-function protocol: one float (or None) per completion."""
        return self.trl_rewards(self.score_batch(completions, **kwargs))

    def close(self) -> None:
        """Stop the worker pool and release the judges' models and connections."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.judging.close()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"] = None
        return state


def check_ready(records: Iterable[Record], settings: RewardSettings) -> list:
    """Raise NotReady when a verifier the records use cannot score here; return those verifiers."""
    records = list(records)
    verifiers = list({r.reward.verifier.name: r.reward.verifier for r in records}.values())
    ctx = Context(settings=settings)
    for verifier in verifiers:
        verifier.check_ready(ctx)
    check_judges(records, settings)
    return verifiers


def _request(record: Record, text: str):
    """What a graded verifier asks its grader about this completion, or None (not graded, or nothing to ask)."""
    spec = record.reward
    if spec.verifier.grader is None:
        return None
    return spec.verifier.request(text, spec.gold, spec.params, record)


def _rollout_key(rollout: Mapping | None):
    return None if rollout is None else json.dumps(rollout, sort_keys=True, default=str)


def _sample(record: Record, text: str, verdict: Verdict, rollout: Mapping | None = None) -> Sample:
    return Sample(
        data_source=record.data_source,
        id=record.id,
        verifier=record.reward.verifier.name,
        reward=combine(record.reward, verdict),
        accuracy=float(verdict.accuracy),
        format=float(verdict.format),
        parts={k: float(v) for k, v in verdict.parts.items()},
        reason=verdict.reason,
        detail=verdict.detail,
        text=text,
        tools=rollout,
    )


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


def completion_text(completion) -> str:
    """The text of a TRL completion: a string, or a list of messages whose contents are joined."""
    return messages_text(completion)
