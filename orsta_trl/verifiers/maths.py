"""``math``: the last ``\\boxed{}`` answer checked against the ground truth with math-verify.

Where we deviate from TRL's ``accuracy_reward``:

* the gold answer is parsed once per record and process (:class:`MathGold` pickles as its text and re-parses
  lazily, with a per-process cache), not once per completion;
* math-verify's SIGALRM timeouts are switched off: they only work in the main thread and cannot interrupt
  C-level work. The router runs this verifier in killable worker processes instead (``isolated = True``),
  which is the hard per-completion time limit;
* an answer whose text equals the gold text (spaces ignored) is accepted without calling sympy.

Accuracy is 1 when math-verify says the answer equals the gold, else 0. With ``params.format =
"think_answer"`` the format score is 0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``
that appears exactly once; with ``"none"`` it is 1.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from orsta_trl.verifiers.answer import answer_block, last_boxed, think_answer_format
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_choice

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


@functools.lru_cache(maxsize=4096)
def parse_gold(text: str):
    """math-verify's parse of a gold answer, cached per process (gold may be bare or already boxed)."""
    parsed = _parse(f"\\boxed{{{text}}}", _answer_config())
    return parsed or _parse(text)


@functools.lru_cache(maxsize=65536)
def answers_match(gold_text: str, answer: str) -> bool:
    """True when math-verify finds ``answer`` (the content of a ``\\boxed{}``) equal to the gold answer.

    >>> answers_match("\\\\frac{1}{2}", "0.5")
    True
    >>> answers_match("3", "4")
    False
    """
    from math_verify import verify

    if _squash(answer) == _squash(gold_text):
        return True
    parsed = _parse(f"\\boxed{{{answer}}}", _answer_config())
    if not parsed:
        return False
    return bool(verify(parse_gold(gold_text), parsed, timeout_seconds=None))


def _squash(text: str) -> str:
    return "".join(text.split())


class MathGold:
    """A gold answer that pickles as its text; the parsed form is rebuilt (and cached) where it is used."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __reduce__(self):
        return (MathGold, (self.text,))

    def __repr__(self) -> str:
        return f"MathGold({self.text!r})"


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
        if not parse_gold(text):
            raise FieldError("reward.ground_truth", f"math-verify cannot parse {text!r}")
        return MathGold(text)

    def warm_up(self) -> None:
        answers_match.__wrapped__("\\frac{1}{2}", "0.5")

    def score(self, text: str, gold: MathGold, params: MathParams, ctx: Context) -> Verdict:
        fmt = think_answer_format(text) if params.format == "think_answer" else 1.0
        block = answer_block(text)
        boxed = last_boxed(block if block is not None else text)
        if boxed is None or not boxed.strip():
            return Verdict(0.0, fmt, reason="no_answer")
        try:
            correct = answers_match(gold.text, boxed.strip())
        except Exception:  # math-verify raises on some malformed LaTeX; never crash training
            return Verdict(0.0, fmt, reason="unparsable_answer")
        return Verdict(1.0 if correct else 0.0, fmt)
