"""A record's reward block, validated, and the formula that turns a verdict into one scalar.

The block names a verifier (built in, or a user's: :mod:`orsta_trl.verifiers.user`), its ground truth and
params, and the weights::

    {"verifier": "detection", "ground_truth": [...], "accuracy_weight": 1.0, "format_weight": 0.1,
     "extra_weights": {}, "params": {}}

:func:`prepare_reward` checks it (every problem a :class:`FieldError` naming the field) and prepares the
verifier's params and gold once per record; :func:`combine` is the reward. V-Triune's reward is
(accuracy x a + format x f) / (a + f); orsta-trl extends it to the verifier's named parts, each with its own weight
in ``extra_weights``. A part missing from a verdict counts as 0.

This is the bottom layer's home of the reward block: records (``data``) validate through it, the router
(``rewards``) combines with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orsta_trl.keys import unknown_key_message
from orsta_trl.verifiers.base import FieldError, Verdict, Verifier
from orsta_trl.verifiers.registry import get_verifier

REWARD_KEYS = ("verifier", "ground_truth", "accuracy_weight", "format_weight", "extra_weights", "params")


@dataclass(frozen=True)
class RewardSpec:
    """A record's reward, validated and prepared: which verifier, its params and gold, and the weights."""

    verifier: Verifier
    params: Any
    gold: Any
    accuracy_weight: float = 1.0
    format_weight: float = 0.0
    extra_weights: Mapping[str, float] = field(default_factory=dict)


def prepare_reward(raw: Any) -> RewardSpec:
    """Validate a record's ``reward`` block and prepare its verifier's params and ground truth.

    Args:
        raw: the block, a mapping with at least ``verifier`` and ``ground_truth``.

    Returns:
        The :class:`RewardSpec`.

    Raises:
        FieldError: naming the field (``reward.params.tolerance``, ``reward.format_weight``, ...).

    >>> prepare_reward({"verifier": "math", "ground_truth": "2", "format_weight": 0.5}).format_weight
    0.5
    """
    if not isinstance(raw, Mapping):
        raise FieldError("reward", "must be an object with at least 'verifier' and 'ground_truth'")
    for key in raw:
        if key not in REWARD_KEYS:
            raise FieldError(f"reward.{key}", unknown_key_message("reward field", key, REWARD_KEYS))
    if "ground_truth" not in raw:
        raise FieldError("reward.ground_truth", "missing")
    verifier = get_verifier(raw.get("verifier"))
    params = verifier.parse_params(_mapping(raw.get("params"), "reward.params"))
    gold = verifier.prepare(raw["ground_truth"], params)
    acc_w = _weight(raw.get("accuracy_weight", 1.0), "reward.accuracy_weight")
    fmt_w = _weight(raw.get("format_weight", 0.0), "reward.format_weight")
    extra = {}
    for name, value in _mapping(raw.get("extra_weights"), "reward.extra_weights").items():
        if name not in verifier.parts:
            raise FieldError(
                f"reward.extra_weights.{name}",
                unknown_key_message(f"{verifier.name} part", name, verifier.parts or ["(none)"]),
            )
        extra[name] = _weight(value, f"reward.extra_weights.{name}")
    if acc_w + fmt_w + sum(extra.values()) <= 0:
        raise FieldError("reward.accuracy_weight", "all weights are zero: the reward would be undefined")
    return RewardSpec(verifier, params, gold, acc_w, fmt_w, extra)


def combine(spec: RewardSpec, verdict: Verdict) -> float:
    """(Σ weight_k × part_k) / (Σ weight_k) over accuracy, format and the weighted extra parts.

    Args:
        spec: the record's prepared reward (its weights).
        verdict: the verifier's verdict on one completion.

    Returns:
        The reward, in [0, 1] when the verdict's parts are.

    >>> spec = prepare_reward({"verifier": "math", "ground_truth": "2", "format_weight": 1.0})
    >>> combine(spec, Verdict(accuracy=1.0, format=0.5))
    0.75
    """
    total = spec.accuracy_weight * verdict.accuracy + spec.format_weight * verdict.format
    weight = spec.accuracy_weight + spec.format_weight
    for name, w in spec.extra_weights.items():
        total += w * float(verdict.parts.get(name, 0.0))
        weight += w
    return total / weight


def _mapping(value: Any, field_name: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldError(field_name, f"must be an object, got {value!r}")
    return value


def _weight(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise FieldError(field_name, f"must be a finite number >= 0, got {value!r}")
    return float(value)
