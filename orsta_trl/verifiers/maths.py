"""``math``: the boxed answer checked against the ground truth with math-verify, as math-verify itself would.

The reference is math-verify with its default configuration: ``verify(parse(f"${gold}$"), parse(region))``
where ``region`` is the completion's ``<answer>`` block (else the whole completion). The gold is parsed with
math-verify's defaults; the region with :func:`answer_config`, math-verify's default ``LatexExtractionConfig``
(default normalisation: shorthand such as ``\\frac12``, ``\\sqrt3``, ``\\dfrac13`` is read as written) less the
three settings below. The tests hold math-verify's own test suite scored both ways.

Where we deviate from math-verify's defaults, on purpose, each with the case that needs it:

* only a ``\\boxed{}`` answer scores (answer policy ``boxed_region``): a completion without one gets
  ``no_answer``, although math-verify's other anchors ("the final answer is $x$") would read it. The prompts
  ask for a box, and the format reward is about following them. In the extraction config this takes:

  - ``boxed_match_priority=0`` (default 50): ``\\boxed{\\frac12}. The final answer is $\\frac13$.`` reads 1/2,
    not 1/3;
  - ``try_extract_without_anchor=False`` (default True): ``I think $x = 7$ \\boxed{???}`` is not read as 7;
  - no ``ExprExtractionConfig`` (default: one after the LaTeX one): ``The answer is 7. \\boxed{\\frac{}{}}`` is
    not read as 7 from the prose;
* a gold that ``$gold$`` cannot parse is read as ``\\boxed{gold}`` before it is rejected, so records whose gold
  is bare LaTeX that math-verify only reads boxed still load;
* math-verify's SIGALRM timeouts are switched off: they only work in the main thread and cannot interrupt
  C-level work. The router runs this verifier in killable worker processes instead (``isolated = True``), under
  a CPU-time limit.

Where we deviate from TRL's ``accuracy_reward``: the gold is parsed once per process, not once per completion;
workers receive the gold's *text* and parse it themselves (cached), because sympy relations and sets do not
survive a pickle round trip (``z = 1 + 1 = 2`` fails to unpickle, ``x = \\pm 2`` comes back unequal to itself);
plain integers and decimals are compared exactly without sympy (:func:`quick_match`, only when the region holds
one box and both sides are plain numbers); everything else becomes a slow job, de-duplicated per batch by
(gold, region).

Accuracy is 1 when math-verify says the answer equals the gold, else 0. With ``params.format =
"think_answer"`` the format score is 0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``
that appears exactly once; with ``"none"`` it is 1.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from orsta_trl.verifiers.answer import boxed_contents, extract, think_answer_format
from orsta_trl.verifiers.base import NOT_RUN, Context, FieldError, Verdict, Verifier, check_choice

for _name in ("math_verify.parser", "math_verify.grader", "math_verify.utils"):
    logging.getLogger(_name).setLevel(logging.ERROR)  # "timeout is disabled" warnings: intended here


@functools.lru_cache(maxsize=1)
def answer_config():
    """math-verify's extraction config for completions: its default LaTeX extraction (default normalisation,
    every box read), reading boxed answers only (the module docstring names the case behind each change)."""
    from math_verify import LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]


def _parse(expression: str, config=None):
    from math_verify import parse

    kwargs = {"extraction_config": config} if config is not None else {}
    return parse(expression, parsing_timeout=None, **kwargs)


def gold_source(text: str) -> str:
    """The text math-verify parses for a gold answer: ``$gold$`` (as the reference does), unless already in ``$``."""
    text = text.strip()
    return text if text.startswith("$") and text.endswith("$") and len(text) > 1 else f"${text}$"


@functools.lru_cache(maxsize=4096)
def gold_expression(text: str):
    """math-verify's parse of a gold answer, once per process (in each worker, from the text it was sent).

    ``$gold$`` first (the reference); a gold it cannot read is tried as ``\\boxed{gold}``; ``[]`` when neither
    parses.
    """
    return _parse(gold_source(text)) or _parse(f"\\boxed{{{text}}}", answer_config())


class MathGold:
    """A gold answer, carried as its text: every process parses it itself (:func:`gold_expression`)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    @classmethod
    def parse(cls, text: str) -> MathGold | None:
        """The gold, or None when math-verify cannot parse it."""
        return cls(text) if gold_expression(text) else None

    def __eq__(self, other) -> bool:
        return isinstance(other, MathGold) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __reduce__(self):
        return (MathGold, (self.text,))

    def __repr__(self) -> str:
        return f"MathGold({self.text!r})"


_INTEGER = re.compile(r"[-+]?\d{1,15}")
_DECIMAL = re.compile(r"[-+]?(\d{1,15}\.\d{0,15}|\.\d{1,15})")


def quick_match(gold_text: str, region: str) -> bool | None:
    """Exact comparisons that need no sympy: True/False when decided, None when math-verify must judge.

    Only a region with exactly one box whose content, like the gold, is a plain integer or decimal (no inner
    spaces, no thousands separators) is decided here: integers by value, decimals only when equal. This never
    says "equal" where math-verify says "different" (a test checks it against math-verify).

    >>> quick_match("92", "\\\\boxed{ 92 }"), quick_match("92", "\\\\boxed{91}"), quick_match("0.5", "\\\\boxed{.50}")
    (True, False, True)
    >>> quick_match("1000", "\\\\boxed{1 000}") is None, quick_match("1", "\\\\boxed{1}, \\\\boxed{2}") is None
    (True, True)
    """
    return _quick(gold_text, boxed_contents(region))


def _quick(gold_text: str, boxes: list[str]) -> bool | None:
    """:func:`quick_match` on the region's boxes, already found."""
    if len(boxes) != 1:
        return None
    answer, gold = boxes[0].strip(), gold_text.strip()
    if _INTEGER.fullmatch(answer) and _INTEGER.fullmatch(gold):
        return int(answer) == int(gold)
    if all(_INTEGER.fullmatch(x) or _DECIMAL.fullmatch(x) for x in (answer, gold)):
        return True if Decimal(answer) == Decimal(gold) else None
    return None


@functools.lru_cache(maxsize=65536)
def answers_match(gold_text: str, region: str) -> bool:
    r"""math-verify's judgement of the boxed answer(s) in ``region`` against the gold answer.

    math-verify never raises here (``raise_on_error`` is off by default in ``parse`` and ``verify``): LaTeX it
    cannot read parses to nothing or to a string, which is not equal to the gold. A bug of ours that raises is
    scored ``verifier_error:...`` by the router, like any verifier's.

    >>> answers_match("\\frac{1}{2}", "\\boxed{0.5}")
    True
    >>> answers_match("x = 1, 2", "so \\boxed{1}, \\boxed{2}")
    True
    >>> answers_match("3", "\\boxed{4}"), answers_match("3", "\\boxed{\\frac{}{}}")
    (False, False)
    """
    from math_verify import verify

    quick = quick_match(gold_text, region)
    if quick is not None:
        return quick
    return bool(verify(gold_expression(gold_text), _parse(region, answer_config()), timeout_seconds=None))


@dataclass(frozen=True)
class MathParams:
    format: str = "think_answer"

    def __post_init__(self):
        check_choice("reward.params.format", self.format, ("think_answer", "none"))


class MathVerifier(Verifier):
    name = "math"
    short_answer = True
    answer_policy = "boxed_region"
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
        """Imports, grammar and caches: one parse and one verify of each kind a job does."""
        answers_match.__wrapped__("\\frac{1}{2}", "\\boxed{0.5}")
        answers_match.__wrapped__("x = 1, 2", "\\boxed{1}, \\boxed{2}")

    def _answer(self, text: str, gold: MathGold) -> tuple[str | None, bool | None]:
        """What math-verify reads (the answer region, when it holds a box with something in it; else None),
        and the fast path's verdict on it (None: math-verify must judge). The boxes are found once."""
        region = extract(text, self.answer_policy)
        boxes = boxed_contents(region) if region is not None else []
        if not any(b.strip() for b in boxes):
            return None, None
        return region, _quick(gold.text, boxes)

    def slow_job(self, text: str, gold: MathGold, params: MathParams, ctx: Context):
        region, quick = self._answer(text, gold)
        return None if region is None or quick is not None else (gold.text, region)

    def run_slow_job(self, job) -> bool:
        return answers_match(*job)

    def job_affinity(self, job) -> str:
        return job[0]  # the gold: a worker that parsed it keeps it in its cache

    def score(self, text: str, gold: MathGold, params: MathParams, ctx: Context, slow=NOT_RUN) -> Verdict:
        fmt = think_answer_format(text) if params.format == "think_answer" else 1.0
        region, correct = self._answer(text, gold)
        if region is None:
            return Verdict(0.0, fmt, reason="no_answer")
        if correct is None:
            correct = answers_match(gold.text, region) if slow is NOT_RUN else slow
        return Verdict(1.0 if correct else 0.0, fmt)
