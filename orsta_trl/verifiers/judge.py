"""``judge``: a model grades the answer against a reference answer, a rubric, or both.

This module is the pure half of a model judge. It builds the judge's prompt from (question, reference, rubric,
answer) with the record's ``template``, and it reads the judge's reply into a score in [0, 1]. Calling the judge
(a local causal LM or an OpenAI-compatible server) is the rewards layer's job
(:mod:`orsta_trl.rewards.judging`): the router collects the prompts of a batch, sends each distinct prompt once,
and hands every reply back to :meth:`JudgeVerifier.score` as the explicit ``reply`` argument. The verifier never
touches a network or a model, so it stays a plain function that can be tested with a table of replies.

Ground truth: a reference answer (a string), or ``{"reference": str, "rubric": str}`` with at least one of
the two. Params:

* ``judge``: the name of a judge that the recipe defines under ``judges:`` (checked before training);
* ``template``: the prompt, with any of ``{question}``, ``{reference}``, ``{rubric}`` and ``{answer}``
  (``{answer}`` is required; ``{{`` and ``}}`` are literal braces);
* ``scale``: ``[low, high]``, the judge's scale for ``parse: number`` (default 0-10), mapped linearly to [0, 1];
* ``parse``: ``"number"`` (a score on the scale) or ``"yes_no"`` (1 for yes, 0 for no);
* ``max_answer_chars``: the answer is cut to this many characters in the prompt (default 4000), so that one
  runaway completion cannot fill the judge's context window.

Reading a reply (:func:`parse_reply`): ``<think>`` blocks are dropped first. For ``number``, in this order:
a labelled score (``Score: 7``, ``Rating - 7/10``, ``[[7]]``, ``[RESULT] 7``), else a fraction anywhere
(``7/10``, ``7 out of 10``), else the last number in the text. A fraction whose denominator is the scale's top
maps through the scale; any other denominator is read as a share (``85/100`` → 0.85). A value outside the scale
is not clipped: it is ``judge_unparsable``, because a judge that answers 12 on a 0-10 scale has not followed the
template and its number means nothing certain. For ``yes_no``: a labelled verdict (``Verdict: yes``,
``Answer: no``), else the reply's first word, else the only one of yes/no (or true/false) that occurs; both or
neither is ``judge_unparsable``.

Parts: ``judge_score`` (the mapped score) and ``judge_valid`` (1 when the reply could be read). Reasons:
``no_answer`` (an empty answer: the judge is not asked), ``judge_unparsable`` (the reply, shortened, is kept as
the verdict's ``detail``, in the dumps), and the rewards layer's
``judge_timeout`` and ``judge_error`` (no reply at all). ``accuracy`` is the score; ``format`` is 1 when the
completion had a non-empty answer.

Deviation: an unparsable reply scores 0 even under the recipe's ``judge_failure: skip``. A reply exists, and
the completion may be what derailed the judge (a prompt injection in the answer), so skipping it would let the
completion escape its penalty. Only a missing reply (timeout, error) is skipped.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orsta_trl.verifiers.answer import extract
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier, check_choice

PARTS = ("judge_score", "judge_valid")
FIELDS = ("question", "reference", "rubric", "answer")
#: Reasons a verdict can carry when the judge gave no reply at all (the rewards layer sets them).
NO_REPLY_REASONS = ("judge_timeout", "judge_error")

DEFAULT_TEMPLATE = (
    "You are grading an answer to a question.\n\n"
    "Question:\n{question}\n\n"
    "Reference answer:\n{reference}\n\n"
    "Grading rubric:\n{rubric}\n\n"
    "Answer to grade:\n{answer}\n\n"
    "Rate how well the answer agrees with the reference and satisfies the rubric on a scale from 0 to 10. "
    "Reply with one line: Score: <number>."
)

_THINK_RE = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_NUM = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_NUMBER_RE = re.compile(rf"(?<![\w.]){_NUM}(?![\d])")
_FRACTION_RE = re.compile(rf"(?<![\w.])({_NUM})\s*(?:/|out\s+of)\s*({_NUM})", re.IGNORECASE)
_LABELLED_RE = re.compile(
    rf"(?:\b(?:score|rating|grade|mark)\b\s*(?:is|of|=|:|-)?\s*\**\s*|\[\[\s*|\[RESULT\]\s*)"
    rf"({_NUM})(?:\s*(?:/|out\s+of)\s*({_NUM}))?",
    re.IGNORECASE,
)
_YES_NO = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
_YES_NO_RE = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_VERDICT_RE = re.compile(
    r"\b(?:verdict|answer|decision|judgement|judgment|correct)\b\s*[:=-]\s*\**\s*(yes|no|true|false)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class JudgeGold:
    """The prepared ground truth: a reference answer and a rubric (either may be empty, not both)."""

    reference: str = ""
    rubric: str = ""


@dataclass(frozen=True)
class JudgeParams:
    judge: str = ""
    template: str = DEFAULT_TEMPLATE
    scale: tuple[float, float] = (0.0, 10.0)
    parse: str = "number"
    max_answer_chars: int = 4000

    def __post_init__(self):
        if not isinstance(self.judge, str) or not self.judge:
            raise FieldError("reward.params.judge", "name the judge to ask (a key of the recipe's judges:)")
        check_template(self.template)
        check_choice("reward.params.parse", self.parse, ("number", "yes_no"))
        scale = self.scale
        if (
            not isinstance(scale, list | tuple)
            or len(scale) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in scale)
            or not all(math.isfinite(v) for v in scale)
            or not scale[0] < scale[1]
        ):
            raise FieldError("reward.params.scale", f"must be [low, high] with low < high, got {scale!r}")
        object.__setattr__(self, "scale", (float(scale[0]), float(scale[1])))
        chars = self.max_answer_chars
        if isinstance(chars, bool) or not isinstance(chars, int) or chars < 1:
            raise FieldError("reward.params.max_answer_chars", f"must be a positive integer, got {chars!r}")


def check_template(template: Any) -> None:
    """Raise FieldError unless ``template`` is a format string over :data:`FIELDS` that uses ``{answer}``.

    >>> check_template("Grade {answer} against {reference}.")
    >>> check_template("{answr}")
    Traceback (most recent call last):
    ...
    orsta_trl.verifiers.base.FieldError: reward.params.template: unknown field {answr} (use {question}, {reference}, {rubric}, {answer}; write {{ and }} for literal braces)
    """
    where = "reward.params.template"
    if not isinstance(template, str) or not template.strip():
        raise FieldError(where, f"must be a non-empty string, got {template!r:.80}")
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise FieldError(
            where, f"not a valid template: {exc} (write {{{{ and }}}} for literal braces)"
        ) from None
    for name in names:
        if name not in FIELDS:
            raise FieldError(
                where,
                f"unknown field {{{name}}} (use {', '.join('{' + f + '}' for f in FIELDS)}; "
                "write {{ and }} for literal braces)",
            )
    if "answer" not in names:
        raise FieldError(where, "must contain {answer}, or the judge never sees the completion")


def build_prompt(template: str, question: str, gold: JudgeGold, answer: str) -> str:
    """The judge's prompt: ``template`` filled in (an empty reference or rubric becomes ``(none)``).

    >>> build_prompt("Q: {question} R: {reference} U: {rubric} A: {answer}", "2+2?", JudgeGold("4"), "four")
    'Q: 2+2? R: 4 U: (none) A: four'
    """
    return template.format(
        question=question or "(none)",
        reference=gold.reference or "(none)",
        rubric=gold.rubric or "(none)",
        answer=answer,
    )


def parse_reply(reply: str, parse: str = "number", scale: tuple[float, float] = (0.0, 10.0)) -> float | None:
    """The judge's reply as a score in [0, 1], or None when it cannot be read (see the module docstring).

    >>> parse_reply("Score: 7/10"), parse_reply("I would give it 8 out of 10."), parse_reply("[[3]]")
    (0.7, 0.8, 0.3)
    >>> parse_reply("Score: 12") is None, parse_reply("Yes, it matches.", "yes_no")
    (True, 1.0)
    """
    text = _THINK_RE.sub(" ", reply or "")
    if parse == "yes_no":
        return _yes_no(text)
    low, high = scale
    labelled = _LABELLED_RE.findall(text)
    if labelled:
        value, denominator = labelled[-1]
    else:
        fractions = _FRACTION_RE.findall(text)
        if fractions:
            value, denominator = fractions[-1]
        else:
            numbers = _NUMBER_RE.findall(text)
            if not numbers:
                return None
            value, denominator = numbers[-1], ""
    value = float(value)
    if denominator:
        top = float(denominator)
        if top == high:
            pass  # "7/10" on a 0-10 scale: the scale applies
        elif top > 0 and 0 <= value <= top:
            return value / top  # "85/100" on a 0-10 scale: a share
        else:
            return None
    if not low <= value <= high:
        return None
    return (value - low) / (high - low)


def shorten(reply: str, limit: int = 200) -> str:
    """A judge's reply as kept behind ``judge_unparsable``: one line, at most ``limit`` characters."""
    flat = " ".join(reply.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _yes_no(text: str) -> float | None:
    labelled = _VERDICT_RE.findall(text)
    if labelled:
        return _YES_NO[labelled[-1].lower()]
    first = re.match(r"[\s*_#>`\"'(\[]*([A-Za-z]+)", text)
    if first and first.group(1).lower() in _YES_NO:
        return _YES_NO[first.group(1).lower()]
    found = {_YES_NO[w.lower()] for w in _YES_NO_RE.findall(text)}
    return found.pop() if len(found) == 1 else None


def question_text(prompt: list[dict]) -> str:
    """The question the judge sees: the text of the user messages of a record's prompt (images are not shown)."""
    return "\n".join(
        part["text"]
        for message in prompt
        if message["role"] == "user"
        for part in message["content"]
        if part.get("type") == "text"
    ).strip()


class JudgeVerifier(Verifier):
    """A model's grade of the answer, asked by the rewards layer; this object builds prompts and reads replies."""

    name = "judge"
    grader = "judge"  # the rewards layer asks the recipe's judges (rewards/judging.py)
    answer_policy = "answer_tag_or_text"
    Params = JudgeParams
    parts = PARTS

    def prepare(self, ground_truth: Any, params: JudgeParams) -> JudgeGold:
        if isinstance(ground_truth, str):
            gold = JudgeGold(reference=ground_truth.strip())
        elif isinstance(ground_truth, Mapping):
            unknown = sorted(set(ground_truth) - {"reference", "rubric"})
            if unknown:
                raise FieldError(
                    f"reward.ground_truth.{unknown[0]}",
                    "the judge's ground truth has only reference and rubric",
                )
            values = {k: ground_truth.get(k, "") for k in ("reference", "rubric")}
            for key, value in values.items():
                if not isinstance(value, str):
                    raise FieldError(f"reward.ground_truth.{key}", f"must be a string, got {value!r:.80}")
            gold = JudgeGold(values["reference"].strip(), values["rubric"].strip())
        else:
            raise FieldError(
                "reward.ground_truth",
                f"judge needs a reference answer (a string) or {{'reference': ..., 'rubric': ...}}, "
                f"got {ground_truth!r:.80}",
            )
        if not gold.reference and not gold.rubric:
            raise FieldError(
                "reward.ground_truth", "give a reference answer, a rubric, or both (both are empty)"
            )
        return gold

    def answer(self, text: str, params: JudgeParams) -> str:
        """The answer the judge sees: the ``<answer>`` block else the whole completion, stripped and cut; lone
        surrogates (which tokenizers and JSON encoders reject) become ``?``, so no completion can turn its own
        grading into a judge error."""
        answer = (extract(text, self.answer_policy) or "").strip()[: params.max_answer_chars]
        return answer.encode("utf-8", "replace").decode("utf-8")

    def prompt(self, text: str, gold: JudgeGold, params: JudgeParams, question: str) -> str | None:
        """The prompt to send to the judge for this completion, or None when there is no answer to grade."""
        answer = self.answer(text, params)
        return build_prompt(params.template, question, gold, answer) if answer else None

    def request(self, text: str, gold: JudgeGold, params: JudgeParams, record: Any) -> tuple[str, str] | None:
        """The grader seam: (judge name, prompt) for this completion, or None when there is no answer."""
        prompt = self.prompt(text, gold, params, question_text(record.prompt))
        return None if prompt is None else (params.judge, prompt)

    def score(
        self, text: str, gold: JudgeGold, params: JudgeParams, ctx: Context, reply: str | None = None
    ) -> Verdict:
        """The verdict from the judge's ``reply`` (None: no reply came, reason ``judge_error``, zero on every part
        as the rewards layer scores a judge that failed)."""
        if not self.answer(text, params):
            return Verdict(0.0, 0.0, dict.fromkeys(PARTS, 0.0), reason="no_answer")
        if reply is None:
            return Verdict(0.0, 0.0, dict.fromkeys(PARTS, 0.0), reason="judge_error")
        value = parse_reply(reply, params.parse, params.scale)
        if value is None:
            return Verdict(
                0.0, 1.0, dict.fromkeys(PARTS, 0.0), reason="judge_unparsable", detail=shorten(reply)
            )
        return Verdict(value, 1.0, {"judge_score": value, "judge_valid": 1.0})
