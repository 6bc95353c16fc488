"""The one registry of verifiers, by the name a record gives in ``reward.verifier``.

The built-in verifiers are listed here, one line each. The registry is open: a user's verifier joins it by
:func:`register_verifier` (Python), or from a recipe's ``verifier_modules`` and ``reward_funcs``
(:func:`load_user_verifiers`); the forms are in :mod:`orsta_trl.verifiers.user`. Every verifier, built in or not,
is held to one contract (``tests/test_registry.py``).
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable, Iterable

from orsta_trl.errors import RecipeError
from orsta_trl.keys import unknown_key_message
from orsta_trl.user_modules import import_user_module
from orsta_trl.verifiers.base import FieldError, Verifier
from orsta_trl.verifiers.count import CountVerifier
from orsta_trl.verifiers.detection import DetectionVerifier
from orsta_trl.verifiers.docparse import DocparseVerifier
from orsta_trl.verifiers.json_output import JsonVerifier
from orsta_trl.verifiers.judge import JudgeVerifier
from orsta_trl.verifiers.maths import MathVerifier
from orsta_trl.verifiers.ocr import OcrVerifier
from orsta_trl.verifiers.plan import PlanVerifier
from orsta_trl.verifiers.rewrite import RewriteVerifier
from orsta_trl.verifiers.tool import ToolVerifier
from orsta_trl.verifiers.user import FunctionVerifier, RewardFunctionVerifier

REGISTRY: dict[str, Verifier] = {
    verifier.name: verifier
    for verifier in (
        MathVerifier(),
        CountVerifier(),
        OcrVerifier(),
        DetectionVerifier(),
        DocparseVerifier(),
        JsonVerifier(),
        RewriteVerifier(),
        PlanVerifier(),
        JudgeVerifier(),
    )
}
REGISTRY["tool"] = ToolVerifier(REGISTRY)  # resolves its answer verifier in this same registry
#: The verifiers shipped with the package: every process (reward workers included) has them by name.
BUILT_IN = frozenset(REGISTRY)


def get_verifier(name: str) -> Verifier:
    """Look a verifier up by name; an unknown name is a FieldError naming the nearest registered one."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        message = unknown_key_message("verifier", str(name), REGISTRY)
        if name not in BUILT_IN:  # a user's verifier joins through the recipe or the Python API
            message += "; your own verifier: name its module in the recipe's verifier_modules or reward_funcs"
            message += " (commands take --recipe), or call orsta_trl.register_verifier"
        raise FieldError("reward.verifier", message) from None


def register_verifier(name: str | None, fn, *, batch: bool | None = None) -> Verifier:
    """Add a user's verifier to the registry, so that records can name it in ``reward.verifier``.

    Args:
        name: the name records use (None: the function's or the Verifier's own name).
        fn: a per-sample function ``fn(completion: str, ground_truth, **params) -> float | dict`` (a dict holds
            ``accuracy`` and named parts), a TRL reward function ``fn(completions, **columns) -> list[float |
            None]``, or a :class:`~orsta_trl.verifiers.base.Verifier` (class or instance).
        batch: True for a TRL reward function; None tells them apart by a ``completions`` parameter.

    Returns:
        The registered verifier. Registering a name again replaces the user verifier of that name.

    Raises:
        ValueError: the name is a built-in verifier's.
        TypeError: ``fn`` is neither form.

    >>> def exact(completion: str, ground_truth: str, strip: bool = True) -> float:
    ...     return float((completion.strip() if strip else completion) == ground_truth)
    >>> register_verifier("exact", exact).name, get_verifier("exact").score("hi ", "hi", {}, None).accuracy
    ('exact', 1.0)
    >>> _ = REGISTRY.pop("exact")
    """
    verifier = as_verifier(fn, name, batch=batch)
    if verifier.name in BUILT_IN and REGISTRY.get(verifier.name) is not verifier:
        raise ValueError(f"{verifier.name!r} is a built-in verifier; give yours another name")
    if not isinstance(verifier.name, str) or not verifier.name:
        raise ValueError(f"a verifier's name is a non-empty string, got {verifier.name!r}")
    REGISTRY[verifier.name] = verifier
    return verifier


def as_verifier(fn, name: str | None = None, *, batch: bool | None = None) -> Verifier:
    """``fn`` in either user form (or a Verifier class or instance) as a verifier named ``name``."""
    if inspect.isclass(fn) and issubclass(fn, Verifier):
        fn = fn()
    if isinstance(fn, Verifier):
        if name is not None and name != fn.name:
            raise ValueError(f"a Verifier is registered under its own name {fn.name!r}, not {name!r}")
        return fn
    if batch is None:
        batch = _takes_completions(fn)
    return RewardFunctionVerifier(fn, name) if batch else FunctionVerifier(fn, name)


def short_answer_verifiers() -> tuple[str, ...]:
    """The registered verifiers whose ground truth is a short answer (``Verifier.short_answer``).

    >>> short_answer_verifiers()[:3]
    ('math', 'count', 'ocr')
    """
    return tuple(name for name, verifier in REGISTRY.items() if verifier.short_answer)


def load_user_verifiers(
    verifier_modules: Iterable[str] = (), reward_funcs: Iterable[str] = ()
) -> list[Verifier]:
    """Import a recipe's ``verifier_modules`` and ``reward_funcs`` and register what they hold.

    Args:
        verifier_modules: dotted module names; every public function (``__all__`` when the module has one) and
            every public :class:`Verifier` subclass defined there becomes a verifier.
        reward_funcs: dotted function names (``trl.rewards.think_format_reward``, ``my_pkg.f``), each a TRL
            reward function.

    Returns:
        The registered verifiers.

    Raises:
        RecipeError: a module or function that cannot be imported, a public function of neither form, a name
        taken by a built-in verifier or by another entry.
    """
    found: dict[str, tuple[str, Verifier]] = {}
    for module_name in verifier_modules:
        module = import_user_module(module_name, key="verifier_modules")
        for obj in _public(module):
            _add(found, f"verifier_modules: {module_name}", obj, batch=False)
    for dotted in reward_funcs:
        module_name, _, attr = str(dotted).rpartition(".")
        if not module_name:
            raise RecipeError(f"reward_funcs: {dotted!r} is not a dotted name like my_pkg.rewards.my_reward")
        fn = getattr(import_user_module(module_name, key="reward_funcs"), attr, None)
        if not callable(fn):
            raise RecipeError(f"reward_funcs: {module_name!r} has no function {attr!r}")
        _add(found, f"reward_funcs: {dotted}", fn, batch=True)
    for where, verifier in found.values():
        if verifier.name in BUILT_IN:
            raise RecipeError(
                f"{where}: {verifier.name!r} is a built-in verifier's name; rename the function"
            )
        REGISTRY[verifier.name] = verifier
    return [verifier for _, verifier in found.values()]


def _add(found: dict, where: str, obj, *, batch: bool) -> None:
    try:
        verifier = as_verifier(obj, batch=batch)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{where}: {exc}") from None
    if verifier.name in found and _origin(found[verifier.name][1]) is not _origin(verifier):
        raise RecipeError(
            f"{where}: a verifier named {verifier.name!r} comes from {found[verifier.name][0]} too"
        )
    found[verifier.name] = (where, verifier)


def _origin(verifier: Verifier):
    return getattr(verifier, "fn", type(verifier))


def _public(module) -> list:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    objects = []
    for name in names:
        obj = getattr(module, name)
        defined_here = getattr(obj, "__module__", None) == module.__name__
        if (
            inspect.isclass(obj)
            and issubclass(obj, Verifier)
            and defined_here
            and not inspect.isabstract(obj)
        ):
            objects.append(obj)
        elif inspect.isfunction(obj) and (defined_here or "__all__" in vars(module)):
            objects.append(obj)
    return objects


def _takes_completions(fn: Callable) -> bool:
    try:
        return "completions" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def worker_reference(verifier: Verifier) -> str | bytes:
    """How a worker process finds ``verifier``: a built-in by name, a user's pickled (it imports its module)."""
    if verifier.name in BUILT_IN and REGISTRY.get(verifier.name) is verifier:
        return verifier.name
    return pickle.dumps(verifier)


def from_worker_reference(reference: str | bytes) -> Verifier:
    """The verifier :func:`worker_reference` points to, in a worker process."""
    return REGISTRY[reference] if isinstance(reference, str) else pickle.loads(reference)
