"""``math``: the last ``\\boxed{}`` answer checked against the ground truth with math-verify.

Where we deviate from TRL's ``accuracy_reward``:

* the gold answer is parsed once per record, when the record is loaded; :class:`MathGold` carries the parse
  pickled once, so a worker process unpickles it (at most once per worker) instead of parsing it again;
* math-verify's SIGALRM timeouts are switched off: they only work in the main thread and cannot interrupt
  C-level work. The router runs this verifier in killable worker processes instead (``isolated = True``),
  which is the hard per-completion time limit;
* answers that equal the gold as text (spaces ignored), and plain integers or decimals, are compared exactly
  without sympy (:func:`quick_match`); only the rest becomes a slow job, de-duplicated per batch by
  (gold, answer).

Accuracy is 1 when math-verify says the answer equals the gold, else 0. With ``params.format =
"think_answer"`` the format score is 0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``
that appears exactly once; with ``"none"`` it is 1.
"""

from __future__ import annotations

import functools
import logging
import pickle
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from orsta_trl.verifiers.answer import answer_block, last_boxed, think_answer_format
from orsta_trl.verifiers.base import NOT_RUN, Context, FieldError, Verdict, Verifier, check_choice

for _name in ("math_verify.parser", "math_verify.grader", "math_verify.utils"):
    logging.getLogger(_name).setLevel(logging.ERROR)  # "timeout is disabled" warnings: intended here


@functools.lru_cache(maxsize=1)
def _answer_config():
    from math_verify import LatexExtractionConfig
    from math_verify.parser import NormalizationConfig

    return [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(
                nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
            ),
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]


def _parse(expression: str, config=None):
    from math_verify import parse

    kwargs = {"extraction_config": config} if config is not None else {}
    return parse(expression, parsing_timeout=None, **kwargs)


def parse_gold_text(text: str):
    """math-verify's parse of a gold answer (bare, or already boxed)."""
    parsed = _parse(f"\\boxed{{{text}}}", _answer_config())
    return parsed or _parse(text)


class MathGold:
    """A gold answer: its text and math-verify's parse of it, pickled once (cheap to ship to workers)."""

    __slots__ = ("text", "blob")

    def __init__(self, text: str, blob: bytes | None = None):
        self.text, self.blob = text, blob

    @classmethod
    def parse(cls, text: str) -> MathGold | None:
        parsed = parse_gold_text(text)
        return cls(text, pickle.dumps(parsed)) if parsed else None

    def __eq__(self, other) -> bool:
        return isinstance(other, MathGold) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __reduce__(self):
        return (MathGold, (self.text, self.blob))

    def __repr__(self) -> str:
        return f"MathGold({self.text!r})"


@functools.lru_cache(maxsize=4096)
def gold_expression(gold: MathGold):
    """The parsed gold, unpickled once per process (parsed here only if it came without its parse)."""
    return pickle.loads(gold.blob) if gold.blob is not None else parse_gold_text(gold.text)


_INTEGER = re.compile(r"[-+]?\d{1,15}")
_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)")


def quick_match(gold_text: str, answer: str) -> bool | None:
    """Exact comparisons that need no sympy: True/False when decided, None when math-verify must judge.

    >>> quick_match("92", " 92 "), quick_match("92", "91"), quick_match("0.5", ".50"), quick_match("0.5", "1/2")
    (True, False, True, None)
    """
    answer, gold = _squash(answer), _squash(gold_text)
    if answer == gold:
        return True
    if _INTEGER.fullmatch(answer) and _INTEGER.fullmatch(gold):
        return int(answer) == int(gold)
    if _DECIMAL.fullmatch(answer) and _DECIMAL.fullmatch(gold):
        try:
            if Decimal(answer) == Decimal(gold):
                return True
        except InvalidOperation:
            return None
    return None


@functools.lru_cache(maxsize=65536)
def answers_match(gold: MathGold, answer: str) -> bool | None:
    r"""math-verify's judgement of ``answer`` (the content of a ``\boxed{}``) against the gold answer.

    Returns None when math-verify fails on the answer (malformed LaTeX).

    >>> answers_match(MathGold.parse("\\frac{1}{2}"), "0.5")
    True
    >>> answers_match(MathGold.parse("3"), "4")
    False
    """
    from math_verify import verify

    quick = quick_match(gold.text, answer)
    if quick is not None:
        return quick
    try:
        parsed = _parse(f"\\boxed{{{answer}}}", _answer_config())
        if not parsed:
            return False
        return bool(verify(gold_expression(gold), parsed, timeout_seconds=None))
    except Exception:  # math-verify raises on some malformed LaTeX; never crash training
        return None


def _squash(text: str) -> str:
    return "".join(text.split())


@dataclass(frozen=True)
class MathParams:
    format: str = "think_answer"

    def __post_init__(self):
        check_choice("reward.params.format", self.format, ("think_answer", "none"))


class MathVerifier(Verifier):
    name = "math"
    Params = MathParams
    isolated = True

    def prepare(self, ground_truth, params: MathParams) -> MathGold:
        if isinstance(ground_truth, bool) or not isinstance(ground_truth, str | int | float):
            raise FieldError("reward.ground_truth", f"math needs a string or number, got {ground_truth!r}")
        text = str(ground_truth).strip()
        if not text:
            raise FieldError("reward.ground_truth", "math ground truth is empty")
        gold = MathGold.parse(text)
        if gold is None:
            raise FieldError("reward.ground_truth", f"math-verify cannot parse {text!r}")
        return gold

    def warm_up(self) -> None:
        answers_match.__wrapped__(MathGold.parse("\\frac{1}{2}"), "0.5")

    @staticmethod
    def _answer(text: str) -> str | None:
        block = answer_block(text)
        boxed = last_boxed(block if block is not None else text)
        return boxed.strip() if boxed is not None and boxed.strip() else None

    def slow_job(self, text: str, gold: MathGold, params: MathParams, ctx: Context):
        answer = self._answer(text)
        if answer is None or quick_match(gold.text, answer) is not None:
            return None
        return (gold, answer)

    def run_slow_job(self, job) -> bool | None:
        return answers_match(*job)

    def score(self, text: str, gold: MathGold, params: MathParams, ctx: Context, slow=NOT_RUN) -> Verdict:
        fmt = think_answer_format(text) if params.format == "think_answer" else 1.0
        answer = self._answer(text)
        if answer is None:
            return Verdict(0.0, fmt, reason="no_answer")
        correct = quick_match(gold.text, answer)
        if correct is None:
            correct = answers_match(gold, answer) if slow is NOT_RUN else slow
        if correct is None:
            return Verdict(0.0, fmt, reason="unparsable_answer")
        return Verdict(1.0 if correct else 0.0, fmt)
