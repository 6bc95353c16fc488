"""User verifiers: a plain function, or a TRL reward function, held to the verifier contract.

Two forms join the registry (:mod:`orsta_trl.verifiers.registry`), each named after its function:

* **Per-sample** (:class:`FunctionVerifier`, recipe key ``verifier_modules``): ``fn(completion: str, ground_truth,
  **params) -> float | dict``. A number is the accuracy; a dict holds ``accuracy`` (required), optionally
  ``format``, a ``reason`` string and named parts, which the function declares as ``fn.parts = ("brevity",)`` so
  that monitors and ``extra_weights`` know them before the first batch. A record's ``reward.params`` are checked
  against the function's signature when the record loads (unknown names with the nearest valid one, required
  ones missing, values of the wrong annotated type). ``fn.short_answer = True`` declares the capability of
  :class:`~orsta_trl.verifiers.base.Verifier`. A function that pickles by reference (a top-level function of an
  importable module) runs in the reward workers under the CPU-time limit, like math-verify; any other (defined
  in ``__main__``, a lambda, a closure) runs in process (:func:`where_it_runs`).
* **Batch** (:class:`RewardFunctionVerifier`, recipe key ``reward_funcs``): a TRL reward function, unchanged, called
  with TRL's signature once per batch: ``completions`` (conversational: ``[[{"role": "assistant", "content":
  text}]]``), ``prompts``, and the record's columns as keyword lists: ``data_source``, ``id``, ``images``, each key
  of ``extra``, and the ground truth as ``ground_truth`` and as ``solution`` (the column that open-r1 and
  ``trl.rewards.accuracy_reward`` read). It runs in process through the verifier contract's grader seam (the
  router collects a batch's completions of one function and asks once). Deviation from TRL: TRL's own
  ``trainer_state``, ``completion_ids``, ``log_metric`` and ``log_extra`` are not passed (our verifiers see
  text, not tokens).

Both: a ``None`` result means "not applicable" (reason ``not_applicable``, None to TRL, as in TRL); a value
outside [0, 1] is clipped (reason ``out_of_range``) and a non-finite one scores 0 (``not_a_number``), because
the reward formula weighs parts that lie in [0, 1]; an exception scores 0 with ``verifier_error:<type>``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import pickle
import sys
import threading
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orsta_trl.errors import RecipeError
from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.base import (
    NOT_APPLICABLE,
    NOT_RUN,
    Context,
    FieldError,
    GraderFailure,
    Verdict,
    Verifier,
)

#: The keys of a result dict that are not parts.
RESULT_KEYS = ("accuracy", "format", "reason")
_SIMPLE_TYPES = (bool, int, float, str, list, dict)


def verdict_from(result: Any, parts: tuple[str, ...]) -> Verdict:
    """A user function's result as a verdict (see the module docstring for the rules).

    Args:
        result: a number, None, or a dict with ``accuracy`` and optional ``format``, ``reason`` and parts.
        parts: the parts the function declared.

    Returns:
        The verdict; every declared part present, each value in [0, 1].

    >>> verdict_from(0.5, ()).accuracy, verdict_from(None, ()).reason, verdict_from(3, ()).reason
    (0.5, 'not_applicable', 'out_of_range')
    >>> verdict_from({"accuracy": 1, "brevity": 0.5}, ("brevity",)).parts
    {'brevity': 0.5}
    """
    zeros = dict.fromkeys(parts, 0.0)
    if result is None:
        return Verdict(0.0, 0.0, zeros, NOT_APPLICABLE)
    if isinstance(result, GraderFailure):
        return Verdict(0.0, 0.0, zeros, result.reason)
    reasons: list[str] = []
    if isinstance(result, Mapping):
        if "accuracy" not in result:
            return Verdict(0.0, 0.0, zeros, "verifier_error:no_accuracy")
        undeclared = sorted(set(result) - set(RESULT_KEYS) - set(parts))
        if undeclared:  # a part the monitor cannot know in advance: declare it in fn.parts
            return Verdict(0.0, 0.0, zeros, f"verifier_error:undeclared_part:{undeclared[0]}")
        values = {k: _unit(result.get(k, 0.0), reasons) for k in ("accuracy", "format", *parts)}
        reason = result.get("reason")
        if reason is not None:
            reasons.insert(0, str(reason))
        named = {k: values[k] for k in parts}
        return Verdict(values["accuracy"], values["format"], named, reasons[0] if reasons else None)
    accuracy = _unit(result, reasons)
    return Verdict(accuracy, 0.0, zeros, reasons[0] if reasons else None)


def _unit(value: Any, reasons: list[str]) -> float:
    """``value`` as a float in [0, 1]; what had to change is appended to ``reasons``."""
    if value is None:
        return 0.0
    if not isinstance(value, numbers.Real):
        reasons.append("verifier_error:not_a_number")
        return 0.0
    value = float(value)
    if not math.isfinite(value):
        reasons.append("not_a_number")
        return 0.0
    if not 0.0 <= value <= 1.0:
        reasons.append("out_of_range")
        return min(1.0, max(0.0, value))
    return value


def where_it_runs(verifier: Verifier) -> str:
    """``"in the reward workers"`` or ``"in process (...why...)"``: what the run says at start."""
    if getattr(verifier, "grader", None):
        return "in process, once per batch (a TRL reward function)"
    if verifier.isolated:
        return f"in the reward workers (CPU-time limit per call; from {_origin(verifier)})"
    why = getattr(verifier, "why_in_process", None) or "its class sets isolated = False"
    return f"in process ({why})"


def _origin(verifier: Verifier) -> str:
    fn = getattr(verifier, "fn", None)
    return f"{fn.__module__}.{fn.__qualname__}" if fn is not None else type(verifier).__module__


class FunctionVerifier(Verifier):
    """A per-sample user function ``fn(completion, ground_truth, **params)`` as a verifier.

    Args:
        fn: the function.
        name: the registry name (default: the function's name).
        parts: its named parts (default: ``fn.parts``).
        short_answer: the capability (default: ``fn.short_answer``).
    """

    answer_policy = "completion"

    def __init__(self, fn: Callable, name: str | None = None, *, parts=None, short_answer=None):
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = _per_sample_signature(fn, self.name)
        self.parts = tuple(parts if parts is not None else getattr(fn, "parts", ()))
        self.short_answer = bool(
            short_answer if short_answer is not None else getattr(fn, "short_answer", False)
        )
        self.why_in_process = _why_not_importable(fn)
        self.isolated = self.why_in_process is None

    def parse_params(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """``reward.params`` checked against the function's keyword parameters."""
        return check_params(self.signature, dict(raw or {}), self.name, _hints(self.fn))

    def score(self, text: str, gold: Any, params: Any, ctx: Context, slow=NOT_RUN) -> Verdict:
        if slow is NOT_RUN:
            try:
                slow = self.fn(text, gold, **params)
            except Exception as exc:  # the user's bug scores 0 with its type, it never stops training
                return Verdict(
                    0.0, 0.0, dict.fromkeys(self.parts, 0.0), f"verifier_error:{type(exc).__name__}"
                )
        return verdict_from(slow, self.parts)

    def slow_job(self, text: str, gold: Any, params: Any, ctx: Context) -> bytes | None:
        """The whole call goes to a worker (hashable bytes), when the function can be found there."""
        return pickle.dumps((text, gold, params)) if self.isolated else None

    def run_slow_job(self, job: bytes) -> Any:
        text, gold, params = pickle.loads(job)
        return self.fn(text, gold, **params)

    def __reduce__(self):
        if not self.isolated:
            raise pickle.PicklingError(f"verifier {self.name!r} runs in process: {self.why_in_process}")
        return (_load_function_verifier, (*_address(self.fn), self.name, self.parts, self.short_answer))


@dataclass(frozen=True)
class BatchRow:
    """One completion on its way to a TRL reward function: the text, the gold and the record's columns."""

    text: str
    gold: Any
    prompt: list = field(default_factory=list)
    columns: Mapping[str, Any] = field(default_factory=dict)


class RewardFunctionVerifier(Verifier):
    """A TRL reward function ``fn(completions, prompts=..., **columns) -> list[float | None]`` as a verifier.

    Args:
        fn: the function, unchanged.
        name: the registry name (default: the function's name).
        short_answer: the capability (default: ``fn.short_answer``).
    """

    answer_policy = "completion"

    def __init__(self, fn: Callable, name: str | None = None, *, short_answer=None):
        if not callable(fn):
            raise TypeError(f"a reward function must be callable, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "reward_func")
        self.grader = f"reward_func:{self.name}"
        _refuse_trainer_arguments(fn, self.name)
        self.short_answer = bool(
            short_answer if short_answer is not None else getattr(fn, "short_answer", False)
        )

    def request(self, text: str, gold: Any, params: Any, record: Any) -> BatchRow:
        columns = {"data_source": record.data_source, "id": record.id, "images": list(record.images)}
        return BatchRow(text, gold, list(record.prompt), {**dict(record.extra), **columns})

    def grade(self, requests: list[BatchRow]) -> list[Any]:
        """Call the function once for the batch; its values (or a failure for every row) in order."""
        rows = list(requests)
        extra = dict.fromkeys(k for row in rows for k in row.columns)
        kwargs = {key: [row.columns.get(key) for row in rows] for key in extra}
        kwargs["solution"] = kwargs["ground_truth"] = [row.gold for row in rows]
        completions = [[{"role": "assistant", "content": row.text}] for row in rows]
        prompts = [row.prompt for row in rows]
        try:
            values = self.fn(prompts=prompts, completions=completions, **kwargs)
            if inspect.isawaitable(values):  # TRL allows async reward functions
                values = _run_on_loop(_awaited(values))
            values = list(values)
        except Exception as exc:  # a bug in the function scores the batch 0, it never stops training
            return [GraderFailure(f"verifier_error:{type(exc).__name__}", str(exc))] * len(rows)
        if len(values) != len(rows):
            failure = GraderFailure(
                "verifier_error:wrong_length", f"{len(values)} values for {len(rows)} rows"
            )
            return [failure] * len(rows)
        return values

    def score(self, text: str, gold: Any, params: Any, ctx: Context, reply: Any = NOT_RUN) -> Verdict:
        """The verdict from the function's value for this completion (``reply``); called alone, a batch of one."""
        if reply is NOT_RUN:
            reply = self.grade([BatchRow(text, gold)])[0]
        return verdict_from(reply, ())


#: What TRL's trainer passes a reward function that scoring outside the trainer (``score``, ``eval``, the router's
#: text-only batches) cannot: a function that *requires* one would fail on every batch, so it is refused at load.
TRAINER_ONLY_ARGUMENTS = ("completion_ids", "trainer_state", "log_extra", "log_metric")


def _refuse_trainer_arguments(fn: Callable, name: str) -> None:
    """A `RecipeError` now, naming the function, when it requires an argument only TRL's trainer can give."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return
    needed = [
        p.name
        for p in parameters
        if p.name in TRAINER_ONLY_ARGUMENTS
        and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if needed:
        raise RecipeError(
            f"reward_funcs: {name} requires {', '.join(needed)}, which only TRL's trainer passes; orsta-trl calls "
            "reward functions with completions, prompts, solution and the record's columns. Give the argument a "
            "default or write it as a per-sample verifier (verifier_modules)"
        )


async def _awaited(awaitable):
    return await awaitable


_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def _run_on_loop(coroutine) -> Any:
    """Run ``coroutine`` on one long-lived event loop in a daemon thread, as TRL runs its async rewards: works
    inside Jupyter (whose loop is already running, so ``asyncio.run`` would raise) and keeps clients bound to a
    loop (an ``AsyncOpenAI`` made once) usable across batches."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or _LOOP.is_closed():
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="orsta-async-rewards", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coroutine, _LOOP).result()


def check_params(signature: inspect.Signature, raw: dict, name: str, hints: Mapping[str, Any]) -> dict:
    """``raw`` checked against the keyword parameters of a per-sample function (after completion and gold).

    Raises:
        FieldError: an unknown name (with the nearest), a required one missing, a value of the wrong type.
    """
    params = list(signature.parameters.values())[2:]
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    for key in raw:
        if key not in named and not open_ended:
            raise FieldError(
                f"reward.params.{key}", unknown_key_message(f"{name} param", key, named or ["(none)"])
            )
    for p in params:
        if p.name in named and p.default is p.empty and p.name not in raw:
            raise FieldError(f"reward.params.{p.name}", f"missing: {name}() requires it")
        hint = hints.get(p.name)
        if p.name in raw and hint in _SIMPLE_TYPES and not _fits(raw[p.name], hint):
            raise FieldError(
                f"reward.params.{p.name}",
                f"must be {hint.__name__} ({name}'s annotation), got {raw[p.name]!r:.80}",
            )
    return raw


def _fits(value: Any, hint: type) -> bool:
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _hints(fn: Callable) -> Mapping[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # annotations that do not resolve are not checked
        return {}


def _per_sample_signature(fn: Callable, name: str) -> inspect.Signature:
    if not callable(fn):
        raise TypeError(f"verifier {name!r}: a verifier is a function or a Verifier, got {fn!r}")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise TypeError(f"verifier {name!r}: cannot read the signature of {fn!r}") from None
    positional = [
        p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if "completions" in signature.parameters:
        raise TypeError(
            f"verifier {name!r} takes `completions`: a TRL reward function; list it in reward_funcs "
            f"(or make it private, _{name}, in a verifier module)"
        )
    if len(positional) < 2:
        raise TypeError(
            f"verifier {name!r}: a per-sample verifier takes (completion, ground_truth, **params), "
            f"got {name}{signature}; make helpers private (_name), or list reward functions in reward_funcs"
        )
    return signature


def _address(fn: Callable) -> tuple[str, str, str]:
    """(module, qualified name, folder the module is imported from) of a top-level function."""
    module = sys.modules[fn.__module__]
    file = Path(module.__file__).resolve()
    depth = fn.__module__.count(".") + (1 if file.name == "__init__.py" else 0)
    return fn.__module__, fn.__qualname__, str(file.parents[depth])


def _why_not_importable(fn: Callable) -> str | None:
    """None when a worker process can import ``fn`` by name; else why not."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if module in (None, "__main__") or module not in sys.modules:
        return "defined in __main__ (a script or notebook), which workers cannot import"
    if "<" in qualname or "." in qualname:
        return "a lambda, closure or method: not importable by name"
    if getattr(sys.modules[module], "__file__", None) is None:
        return f"its module {module} has no file"
    if getattr(sys.modules[module], qualname, None) is not fn:
        return f"{module}.{qualname} is not this function (redefined or wrapped)"
    return None


def _load_function_verifier(
    module: str, qualname: str, folder: str, name, parts, short_answer
) -> FunctionVerifier:
    """Unpickle in a worker: import the function's module from the folder it came from."""
    if module not in sys.modules and folder not in sys.path:
        sys.path.insert(0, folder)
    __import__(module)
    fn = getattr(sys.modules[module], qualname)
    return FunctionVerifier(fn, name, parts=parts, short_answer=short_answer)
