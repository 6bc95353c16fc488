"""``ocr``: recognised text compared with the ground-truth text.

The answer is the ``<answer>`` block, else the last ``\\boxed{}``, else the whole completion. Whitespace is
normalised (runs collapse to one space, ends stripped) and, unless ``params.case_sensitive``, case folded.
``params.mode = "exact"`` gives accuracy 1 on equality, else 0; ``"ned"`` gives 1 - normalised Levenshtein
distance (rapidfuzz). Format is 1 when the answer came from an answer block or a box.
"""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from orsta_trl.verifiers.answer import extract
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_choice


def normalise(text: str, case_sensitive: bool) -> str:
    """Collapse whitespace and, unless case-sensitive, case-fold.

    >>> normalise("  Hello \\n  World ", case_sensitive=False)
    'hello world'
    """
    text = " ".join(text.split())
    return text if case_sensitive else text.casefold()


def ocr_similarity(pred: str, gold: str, mode: str) -> float:
    """1.0/0.0 for ``exact``; 1 - normalised edit distance for ``ned`` (1 when both are empty).

    >>> round(ocr_similarity("captain", "capital", "ned"), 4)
    0.5714
    """
    if mode == "exact":
        return 1.0 if pred == gold else 0.0
    return Levenshtein.normalized_similarity(pred, gold)


@dataclass(frozen=True)
class OcrParams:
    mode: str = "exact"
    case_sensitive: bool = False

    def __post_init__(self):
        check_choice("reward.params.mode", self.mode, ("exact", "ned"))
        check_choice("reward.params.case_sensitive", self.case_sensitive, (True, False))


class OcrVerifier(Verifier):
    name = "ocr"
    Params = OcrParams
    short_answer = True
    answer_policy = "answer_or_boxed"

    def prepare(self, ground_truth, params: OcrParams) -> str:
        if not isinstance(ground_truth, str):
            raise FieldError(
                "reward.ground_truth",
                f"ocr needs the text as a string, got {type(ground_truth).__name__} {ground_truth!r} "
                "(a number loses digits such as a trailing zero: quote it)",
            )
        return normalise(str(ground_truth), params.case_sensitive)

    def score(self, text: str, gold: str, params: OcrParams, ctx: Context) -> Verdict:
        answer = extract(text, self.answer_policy)
        fmt = 1.0 if answer is not None else 0.0
        answer = normalise(answer if answer is not None else text, params.case_sensitive)
        if not answer:
            return Verdict(0.0, fmt, reason="no_answer")
        return Verdict(ocr_similarity(answer, gold, params.mode), fmt)
