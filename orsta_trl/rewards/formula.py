"""The reward formula: one scalar per completion from a verdict and the record's weights.

V-Triune's reward is (accuracy x a + format x f) / (a + f); orsta-trl extends it to the verifier's named parts,
each with its own weight in ``reward.extra_weights``. A part missing from a verdict counts as 0.
"""

from __future__ import annotations

from orsta_trl.data.records import RewardSpec
from orsta_trl.verifiers.base import Verdict


def combine(spec: RewardSpec, verdict: Verdict) -> float:
    """(Σ weight_k × part_k) / (Σ weight_k) over accuracy, format and the weighted extra parts.

    >>> from orsta_trl.data.records import prepare_reward
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
