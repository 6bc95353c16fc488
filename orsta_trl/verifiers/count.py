"""``count``: an integer answer compared with an integer ground truth, within an absolute tolerance.

The answer is the integer inside the last ``\\boxed{}`` (searched in the ``<answer>`` block when there is
one), else the last integer in the answer block (or in the whole text when there is no answer block).
Accuracy is 1 when |answer - ground_truth| <= ``params.tolerance``, else 0. Format is 1 when an answer
block exists or a boxed integer was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orsta_trl.verifiers.answer import extract, has_answer_markup
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_number


def parse_count(text: str) -> int | None:
    """The integer a completion answers, or None.

    >>> parse_count("<answer>There are 7 cats, not 6: \\\\boxed{7}</answer>")
    7
    >>> parse_count("<answer>1,024 dots</answer>")
    1024
    >>> parse_count("<answer>none</answer>") is None
    True
    """
    token = extract(text, CountVerifier.answer_policy)
    return None if token is None else _to_int(token)


def _to_int(token: str) -> int | None:
    digits = token.replace(",", "")
    if len(digits) > 18:  # absurdly long numbers are not counts
        return None
    return int(digits)


@dataclass(frozen=True)
class CountParams:
    tolerance: float = 0

    def __post_init__(self):
        check_number("reward.params.tolerance", self.tolerance, low=0)


class CountVerifier(Verifier):
    name = "count"
    Params = CountParams
    short_answer = True
    answer_policy = "number"

    def prepare(self, ground_truth, params: CountParams) -> int:
        if isinstance(ground_truth, str) and re.fullmatch(r"\s*[-+]?\d+\s*", ground_truth):
            ground_truth = int(ground_truth)
        if isinstance(ground_truth, bool) or not isinstance(ground_truth, int):
            raise FieldError("reward.ground_truth", f"count needs an integer, got {ground_truth!r}")
        return ground_truth

    def score(self, text: str, gold: int, params: CountParams, ctx: Context) -> Verdict:
        answer = parse_count(text)
        fmt = 1.0 if has_answer_markup(text) else 0.0
        if answer is None:
            return Verdict(0.0, fmt, reason="no_answer")
        return Verdict(1.0 if abs(answer - gold) <= params.tolerance else 0.0, fmt)
