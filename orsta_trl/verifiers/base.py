"""The verifier contract.

A verifier is a pure function of (completion text, prepared ground truth, params, context) that returns a
:class:`Verdict`. It knows nothing of the trainer, the tokenizer or global state, so the same object scores
training batches, ``orsta-trl score`` files, evaluation sets and difficulty filters, in threads or in worker
processes (every verifier is a small picklable object).

Each verifier declares:

* ``answer_policy``: what it reads as the answer, one of :data:`orsta_trl.verifiers.answer.POLICIES`.

* ``Params``: a frozen dataclass of its ``reward.params`` with defaults. Unknown keys and bad values are
  load-time errors (:class:`FieldError`), raised before training starts.
* ``prepare(ground_truth, params)``: validates and pre-parses the ground truth once per record.
* ``score(text, gold, params, ctx)``: never raises on a malformed completion; it returns zeros and a ``reason``.
* ``parts``: the names of the extra parts it reports, so monitors know every key before the first batch.
* ``short_answer``: True when its ground truth is a short answer (a number, an expression, a word) read from the
  completion's answer region. Question/answer tables convert to such verifiers, the ``choice`` filter and the
  prompt pool's answer-format sentences apply to them (``math``, ``count``, ``ocr``; a user verifier may say so).
* ``grader``: None for a verifier that scores alone. A verifier graded from outside (a model judge, a TRL batch
  reward function) names its grader and builds one ``request(text, gold, params, record)`` per completion; the
  router collects a batch's requests per grader, asks each grader once (:meth:`Verifier.grade` unless the rewards
  layer provides the grader: the judges), and finishes each verdict with ``score(..., reply=)``. A grader may
  answer a :class:`GraderFailure` instead of a reply: that completion scores 0 with the failure's reason.
* ``isolated``: True when a single call may hang (math-verify on pathological input). Such a verifier splits
  its work: ``slow_job(text, gold, params, ctx)`` returns a small hashable description of the part that may
  hang (or None when the text needs nothing slow), ``run_slow_job(job)`` computes it, and
  ``score(..., slow=result)`` finishes the verdict with that result. The router de-duplicates jobs across a
  batch and runs each in a killable worker process under a hard time limit; ``score`` without ``slow`` does
  everything in-process, so the verifier stays a plain pure function.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orsta_trl.errors import NotReady
from orsta_trl.keys import unknown_key_message

__all__ = ["Context", "FieldError", "GraderFailure", "NotReady", "RewardSettings", "Verdict", "Verifier"]

#: The reason of a verdict that does not apply to a completion (a TRL reward function's None): TRL gets None,
#: which leaves the completion out of the advantage, as in TRL.
NOT_APPLICABLE = "not_applicable"

#: V-Triune's dynamic IoU schedule: (training progress from which it applies, IoU threshold).
DEFAULT_IOU_SCHEDULE: tuple[tuple[float, float], ...] = ((0.0, 0.85), (0.10, 0.95), (0.25, 0.99))
#: Qwen2.5-VL processor defaults (pixels of the resized model input).
DEFAULT_MIN_PIXELS = 3136
DEFAULT_MAX_PIXELS = 12845056


class FieldError(ValueError):
    """A bad value in one field of a record (``reward.params.tolerance``, ``reward.ground_truth`` ...)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Verdict:
    """What a verifier says about one completion.

    ``accuracy`` and ``format`` lie in [0, 1]; ``parts`` holds any other named scores (each in [0, 1]);
    ``reason`` is None for a completion that could be scored as intended, else a short code such as
    ``no_answer``, ``unparsable_boxes`` or ``timeout``; ``detail`` is what lies behind a reason when it helps to
    read it (a judge's unparsable reply, shortened), kept in the dumps and ``score``'s output, never counted.
    """

    accuracy: float
    format: float
    parts: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "format": self.format,
            "parts": dict(self.parts),
            "reason": self.reason,
            **({"detail": self.detail} if self.detail is not None else {}),
        }


@dataclass
class RewardSettings:
    """The recipe's reward settings: the one place these recipe keys are declared.

    The recipe's :class:`orsta_trl.recipe.OrstaConfig` takes this class as its reward section (the YAML keys stay
    flat), and ``OrstaConfig.reward_settings()`` hands a copy, whole, to the router and, inside every
    :class:`Context`, to each verifier. It lives here, in the bottom layer, because verifiers read it;
    ``orsta_trl.rewards`` re-exports it. The values are checked with the rest of the recipe
    (:mod:`orsta_trl.recipe.checks`).
    """

    min_pixels: int = field(
        default=DEFAULT_MIN_PIXELS,
        metadata={
            "help": "Smallest image area after the processor's resize. The one source of truth for the trainer's "
            "processor, the processor config that colocated vLLM reads, and box rescaling (Qwen2.5-VL answers "
            "in resized-input coordinates)."
        },
    )
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata={"help": "Largest image area after resize."})
    iou_schedule: tuple[tuple[float, float], ...] = field(
        default=DEFAULT_IOU_SCHEDULE,
        metadata={
            "help": "Dynamic IoU threshold: pairs [progress_from, threshold], progress = global step / max steps."
        },
    )
    reward_timeout_s: float = field(
        default=2.0,
        metadata={
            "help": "Per-job CPU-time limit, in seconds, of verifiers that run in worker processes (math, tool); "
            "a wall-clock backstop catches jobs that stall without using CPU."
        },
    )
    reward_workers: int = field(
        default=0,
        metadata={
            "help": "Reward worker processes per rank (0: the usable cores divided among the node's ranks)."
        },
    )
    verifier_modules: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Python modules whose public functions fn(completion, ground_truth, **params) -> float | dict "
            "(and Verifier subclasses) become verifiers named after them (README: Your own reward)."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "TRL reward functions by dotted name (trl.rewards.think_format_reward, my_pkg.f), each a "
            "verifier named after the function, called with TRL's batch signature."
        },
    )
    rewrite_embedder: str | None = field(
        default=None,
        metadata={
            "help": "Sentence-embedding model of the 'rewrite' verifier (a hub name, a folder, or a package that "
            "ships one)."
        },
    )
    judges: Mapping[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Model judges for the 'judge' verifier: {name: {backend: transformers|openai, model, ...}} "
            "(see orsta_trl/rewards/judges.py for each backend's keys)."
        },
    )
    judge_failure: str = field(
        default="zero",
        metadata={
            "help": "What a judge that gives no reply (timeout, error) scores: 'zero', or 'skip' (None to TRL, "
            "which leaves the completion out of the advantage)."
        },
    )


@dataclass(frozen=True)
class Context:
    """What a verifier may know beyond the text and the ground truth.

    ``progress`` is training progress in [0, 1] (global step / max steps), derived from the trainer state, so
    schedules are right after a resume. ``image_sizes`` are the original (width, height) of the record's
    images. ``settings`` is the run's :class:`RewardSettings`, whole. ``iou_override`` replaces any record's
    ``iou_threshold`` (a number or ``"average"``): evaluation uses it so that it never follows the training
    schedule. ``rollout`` is per-completion data from generation (a mapping, or None): the tool loop puts the
    real outcome of each tool call there (``{"tool_outcomes": [True, False]}``), which the ``tool`` verifier
    prefers over reading outcomes from the transcript.
    """

    progress: float = 1.0
    image_sizes: tuple[tuple[int, int], ...] = ()
    settings: RewardSettings = field(default_factory=RewardSettings)
    iou_override: float | str | None = None
    rollout: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class GraderFailure:
    """An outside grader gave no reply for a request: ``reason`` (``judge_timeout``, ``judge_error``,
    ``verifier_error:...``) becomes the sample's reason; ``detail`` says what happened."""

    reason: str
    detail: str = ""


#: ``score(..., slow=NOT_RUN)``: the slow part has not been run elsewhere; compute it here.
NOT_RUN = object()


@dataclass(frozen=True)
class NoParams:
    """For verifiers without parameters."""


class Verifier(ABC):
    """Base class: subclasses set the class attributes and implement ``score`` (and usually ``prepare``)."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    parts: ClassVar[tuple[str, ...]] = ()
    isolated: ClassVar[bool] = False
    needs_image_size: ClassVar[bool] = False
    #: Its ground truth is a short answer read from the answer region (see the module docstring).
    short_answer: ClassVar[bool] = False
    #: The name of the outside grader its requests go to, or None when it scores alone.
    grader: ClassVar[str | None] = None
    #: Which answer-extraction policy of :data:`orsta_trl.verifiers.answer.POLICIES` this verifier reads.
    answer_policy: ClassVar[str]

    def parse_params(self, raw: Mapping[str, Any] | None) -> Any:
        """Build ``self.Params`` from a record's ``reward.params``; unknown keys name the nearest valid one."""
        raw = dict(raw or {})
        names = [f.name for f in dataclasses.fields(self.Params)]
        for key in raw:
            if key not in names:
                raise FieldError(
                    f"reward.params.{key}", unknown_key_message(f"{self.name} param", key, names)
                )
        try:
            return self.Params(**raw)
        except FieldError:
            raise
        except (TypeError, ValueError) as exc:
            raise FieldError("reward.params", str(exc)) from exc

    def prepare(self, ground_truth: Any, params: Any) -> Any:
        """Validate and pre-parse the ground truth once per record (raise FieldError when it is unusable)."""
        return ground_truth

    @abstractmethod
    def score(self, text: str, gold: Any, params: Any, ctx: Context) -> Verdict:
        """The verdict on one completion; never raises on what the completion contains."""

    def request(self, text: str, gold: Any, params: Any, record: Any) -> Any:
        """Graded verifiers: what to ask the grader about this completion (hashable), or None when there is
        nothing to ask (no answer): then ``score`` runs without a reply. ``record`` is the record being scored
        (its ``prompt``, ``data_source``, ``id`` and ``extra``)."""
        return None

    def grade(self, requests: list[Any]) -> list[Any]:
        """Graded verifiers whose grader is themselves: one reply (or :class:`GraderFailure`) per request, in
        order, for one batch. The judges' grader lives in the rewards layer instead."""
        raise TypeError(f"{self.name} has no grader of its own")

    def slow_job(self, text: str, gold: Any, params: Any, ctx: Context) -> Any:
        """Isolated verifiers: the hashable, picklable part of scoring ``text`` that may hang, or None."""
        return None

    def run_slow_job(self, job: Any) -> Any:
        """Isolated verifiers: compute a job returned by :meth:`slow_job` (in a worker process)."""
        raise TypeError(f"{self.name} returns no slow jobs, so it has none to run")

    def job_affinity(self, job: Any) -> Any:
        """Isolated verifiers: a key shared by jobs that reuse one worker's cache (math: the gold), or None."""
        return None

    def check_images(self, gold: Any, params: Any, image_sizes: list[tuple[int, int]]) -> None:  # noqa: B027
        """Raise FieldError when the prepared ground truth is impossible for the record's images (sizes known)."""

    def check_ready(self, ctx: Context) -> None:  # noqa: B027 (an optional hook)
        """Raise before training when something the verifier needs at scoring time is missing (a model)."""

    def warm_up(self) -> None:  # noqa: B027 (an optional hook: most verifiers have nothing to warm)
        """Load lazy imports and caches once, before worker processes fork (isolated verifiers only)."""

    def __repr__(self) -> str:
        return f"<verifier {self.name}>"


def check_choice(field_name: str, value: Any, allowed: tuple) -> None:
    """Raise FieldError unless ``value`` is one of ``allowed`` (used in Params.__post_init__)."""
    if value not in allowed:
        raise FieldError(field_name, f"must be one of {list(allowed)}, got {value!r}")


def check_number(field_name: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    """Raise FieldError unless ``value`` is a real number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field_name, f"must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise FieldError(field_name, f"must lie in [{low}, {high}], got {value!r}")
