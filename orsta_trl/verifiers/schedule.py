"""V-Triune's dynamic IoU threshold: a step schedule over training progress.

A schedule is a sorted sequence of ``(progress_from, threshold)`` pairs. The paper's rule is "0.85 while
progress <= 10 %, 0.95 while <= 25 %, then 0.99", so a pair takes over when progress is *strictly greater*
than its ``progress_from``; the first pair applies from the very start (progress 0, and below) whatever its
``progress_from``. With the default ``((0.0, 0.85), (0.10, 0.95), (0.25, 0.99))``:

>>> [iou_threshold_at(p) for p in (0.0, 0.10, 0.1000001, 0.25, 0.26, 1.0)]
[0.85, 0.85, 0.95, 0.95, 0.99, 0.99]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from orsta_trl.verifiers.base import DEFAULT_IOU_SCHEDULE

Schedule = tuple[tuple[float, float], ...]


def iou_threshold_at(progress: float, schedule: Sequence[Sequence[float]] = DEFAULT_IOU_SCHEDULE) -> float:
    """The IoU threshold in force at ``progress`` (in [0, 1]) under a schedule checked by :func:`validate_schedule`.

    The last pair whose ``progress_from`` is strictly below ``progress`` wins; when there is none (progress at or
    before the second pair's start, or a NaN progress), the first pair applies.
    """
    threshold = float(schedule[0][1])
    for start, value in schedule[1:]:
        if progress > start:
            threshold = float(value)
        else:
            break
    return threshold


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def validate_schedule(schedule: Any) -> Schedule:
    """Check a schedule and return it as a tuple of ``(float, float)`` pairs; raise ValueError naming the problem.

    Rules: at least one pair; each pair is ``[progress_from, threshold]`` of real numbers; ``progress_from`` lies
    in [0, 1) and strictly increases from pair to pair; every threshold lies in (0, 1].

    >>> validate_schedule([[0, 0.5], [0.5, 0.9]])
    ((0.0, 0.5), (0.5, 0.9))
    """
    if isinstance(schedule, str | bytes) or not isinstance(schedule, Sequence) or len(schedule) == 0:
        raise ValueError(
            f"an IoU schedule must be a non-empty list of [progress_from, threshold] pairs, got {schedule!r}"
        )
    pairs: list[tuple[float, float]] = []
    for i, pair in enumerate(schedule):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"IoU schedule pair {i} must be [progress_from, threshold], got {pair!r}")
        start, threshold = pair
        if not (_is_real(start) and _is_real(threshold)):
            raise ValueError(f"IoU schedule pair {i} must hold two real numbers, got {pair!r}")
        if not 0.0 <= start < 1.0:
            raise ValueError(f"IoU schedule pair {i}: progress_from must lie in [0, 1), got {start!r}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"IoU schedule pair {i}: threshold must lie in (0, 1], got {threshold!r}")
        if pairs and start <= pairs[-1][0]:
            raise ValueError(
                f"IoU schedule pair {i}: progress_from must increase strictly, got {start!r} after {pairs[-1][0]!r}"
            )
        pairs.append((float(start), float(threshold)))
    return tuple(pairs)
