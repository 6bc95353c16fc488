"""The math verifier against references no one here wrote, through the worker pool as in training.

Two references, both independent of ``orsta_trl``:

* math-verify with its **default** configuration (``conftest.math_verify_reference``: ``parse`` and ``verify``
  with no extraction config), on the LaTeX shorthand models write, the regressions found under load, the fast
  path's plain numbers, and every case of math-verify's own test suite;
* math-verify's own test **expectations**: ``tests/data/math_verify_cases.json`` holds every (gold, pred,
  expected) case of https://github.com/huggingface/Math-Verify/tree/5d148cfaaf99214c2e4ffb4bc497ab042c592a7a/tests
  (``tests/data/extract_math_verify_cases.py`` rebuilds it), ``expected`` as upstream wrote it.

The one deliberate deviation (only a boxed answer scores; ``orsta_trl/verifiers/maths.py`` names the cases) is
asserted where it applies, never hidden. With the CPUs busy, no ordinary answer times out and pathological ones
still do.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import math_verify_reference

from orsta_trl.data.records import Record, prepare_reward
from orsta_trl.rewards import RewardRouter, RewardSettings
from orsta_trl.verifiers.maths import quick_match

CASES = Path(__file__).parent / "data" / "math_verify_cases.json"

#: (gold, answer) as models write LaTeX: math-verify's defaults say "equal" to every one.
SHORTHAND = [
    ("0.5", r"\frac12"),
    (r"\frac{1}{3}", r"\frac13"),
    (r"\frac{1}{3}", r"\dfrac13"),
    (r"\sqrt{3}", r"\sqrt3"),
    (r"2\sqrt{2}", r"2\sqrt2"),
    (r"\frac{9}{4}\pi", r"\frac94\pi"),
    (r"-\frac{1}{2}", r"-\frac12"),
    (r"\frac{3\sqrt{5}}{5}", r"\frac{3}{\sqrt5}"),
    (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}"),
]

#: A box whose content is prose (inline math, or two words in a row): math-verify's defaults read the answer
#: out of the prose; the verifier, which scores only what is boxed, does not.
PROSE_BOX = re.compile(r"\$|\\\(|[A-Za-z]{2,}[,.:]?\s+[A-Za-z]{2,}")

#: (gold, pred) of math-verify's suite where upstream's expectation differs from math-verify's defaults, and why.
UPSTREAM_CONFIG_ONLY = {
    # upstream parses this prose gold with its test config (boxes first) and reads {1, 2} differently; the
    # defaults on "$gold$", as the verifier reads golds, say equal (the verifier agrees with the defaults).
    (r"\boxed{1} no no no no no \boxed{2}", r"$\boxed{1,2}$"): True,
}

#: (gold, completion): found wrong under load; the expected value is math-verify's, and noted beside.
REGRESSIONS = [
    ("z = 1 + 1 = 2", r"\boxed{z = 1 + 1 = 2}"),  # raised on unpickling: scored unparsable_answer
    (r"x=\pm 2", r"\boxed{x=\pm 2}"),  # came back False from the workers
    ("x = 1, 2", r"\boxed{x = 1, 2}"),
    ("n=1, 2, 3", r"\boxed{n=1, 2, 3}"),
    (r"x \in [-2, 7]", r"\boxed{x \in [-2, 7]}"),
    ("D = (0, 1)", r"\boxed{D = (0, 1)}"),
    (r"a=4,\,-8,\,-10", r"\boxed{a=4,\,-8,\,-10}"),
    ("1000", r"\boxed{1 000}"),  # the fast path removed spaces: said equal
    ("23", r"\boxed{2 3}"),
    ("1, 2, 3", r"\boxed{1}, \boxed{2}, \boxed{3}"),  # several boxes: math-verify reads a set
    ("1,22", r"\boxed{1.22}"),  # math-verify 0.9 reads $1,22$ as the set {1, 22}, as \boxed{1,22}: not 1.22
    ("1,22", r"\boxed{1, 22}"),
]


def score_through_the_pool(pairs, timeout_s=2.0, workers=None):
    """Score (gold, completion) pairs with the router and its worker pool; return the samples."""
    golds = sorted({gold for gold, _ in pairs})
    records = {
        gold: Record(f"g{i}", "mv", [], [], prepare_reward({"verifier": "math", "ground_truth": gold}))
        for i, gold in enumerate(golds)
    }
    router = RewardRouter(
        records.values(), RewardSettings(reward_timeout_s=timeout_s, reward_workers=workers or 0)
    )
    try:
        router.start()
        return router.score([records[g] for g, _ in pairs], [f"<answer>{c}</answer>" for _, c in pairs])
    finally:
        router.close()


def test_shorthand_latex_scores_as_math_verify_defaults_say():
    pairs = [(gold, rf"\boxed{{{answer}}}") for gold, answer in SHORTHAND]
    assert [math_verify_reference(g, c) for g, c in pairs] == [True] * len(pairs)
    samples = score_through_the_pool(pairs)
    assert [(s.accuracy, s.reason) for s in samples] == [(1.0, None)] * len(pairs)


#: (gold, completion, what math-verify's defaults say): the cases ``maths.py`` names for its departures from
#: the defaults, where the verifier reads only the box and scores the opposite.
DEPARTURES = [
    # boxed_match_priority=0: the box, not the anchor (not a plain number: the fast path would decide a "4")
    (r"\frac{1}{2}", r"\boxed{\frac12}. The final answer is $\frac13$.", False),
    ("7", r"I think $x = 7$ \boxed{???}", True),  # try_extract_without_anchor=False: not the prose's LaTeX
    ("7", r"The answer is 7. \boxed{\frac{}{}}", True),  # no ExprExtractionConfig: not the prose's number
]


def test_each_departure_from_math_verify_defaults_has_its_case():
    assert [math_verify_reference(g, c) for g, c, _ in DEPARTURES] == [d for _, _, d in DEPARTURES]
    samples = score_through_the_pool([(g, c) for g, c, _ in DEPARTURES])
    assert [s.accuracy for s in samples] == [0.0 if d else 1.0 for _, _, d in DEPARTURES]


def test_the_regressions_agree_with_math_verify():
    expected = [math_verify_reference(gold, completion) for gold, completion in REGRESSIONS]
    # the cases mean what they say: correct answers of relations and sets, and the loose fast path's cases
    assert expected[:7] == [True] * 7 and expected[7:9] == [False, False]
    assert expected[9:] == [True, False, True]
    samples = score_through_the_pool(REGRESSIONS)
    assert [s.accuracy == 1.0 for s in samples] == expected
    assert all(s.reason is None for s in samples), [s.reason for s in samples]


def _suite():
    return json.loads(CASES.read_text(encoding="utf-8"))["cases"]


def _as_completion(pred: str) -> str:
    """The upstream prediction as a completion the verifier reads: boxed as written, else put in one box."""
    return pred if "\\boxed" in pred else rf"\boxed{{{pred}}}"


@pytest.fixture(scope="module")
def suite_scores():
    """Every case of math-verify's suite scored by the verifier (through the pool) and by math-verify's defaults."""
    cases = _suite()
    completions = [_as_completion(c["pred"]) for c in cases]
    samples = score_through_the_pool([(c["gold"], text) for c, text in zip(cases, completions, strict=True)])
    defaults = [math_verify_reference(c["gold"], text) for c, text in zip(cases, completions, strict=True)]
    return cases, completions, samples, defaults


def test_agrees_with_math_verify_defaults_on_its_whole_test_suite(suite_scores):
    cases, completions, samples, defaults = suite_scores
    assert len(cases) == 255
    assert sum(s.reason == "timeout" for s in samples) == 0
    disagree = [
        (c["source"], c["gold"], text, s.accuracy, d)
        for c, text, s, d in zip(cases, completions, samples, defaults, strict=True)
        if (s.accuracy == 1.0) != d
    ]
    # every disagreement is the deliberate one: math-verify's defaults find the answer in prose put in a box
    unexplained = [x for x in disagree if not (x[4] and PROSE_BOX.search(x[2][len("\\boxed{") : -1]))]
    assert unexplained == []
    # and they are exactly the 26 known ones (229 of 255 agree): a new disagreement of that kind fails too
    indices = [i for i, (s, d) in enumerate(zip(samples, defaults, strict=True)) if (s.accuracy == 1.0) != d]
    assert indices == KNOWN_PROSE_BOX_DISAGREEMENTS, [cases[i]["gold"] for i in indices]


#: Indices into math-verify's suite (CASES) of the cases where a box holding prose scores 0 here and math-verify's
#: defaults read an answer from it (the deliberate departure above), measured with math-verify 0.9.0.
KNOWN = "7 13 14 15 16 32 88 89 90 91 92 119 120 121 122 124 141 142 143 147 148 156 157 159 163 169"
KNOWN_PROSE_BOX_DISAGREEMENTS = [int(i) for i in KNOWN.split()]


def test_agrees_with_math_verify_test_expectations(suite_scores):
    cases, completions, samples, defaults = suite_scores
    boxed = [
        (c, s, d)
        for c, text, s, d in zip(cases, completions, samples, defaults, strict=True)
        if text == c["pred"]
    ]
    assert (
        len(boxed) == 95
    )  # upstream predictions that hold a box as written: scored exactly as upstream wrote them
    disagree = {
        (c["gold"], c["pred"]): s.accuracy == 1.0 for c, s, _ in boxed if (s.accuracy == 1.0) != c["expected"]
    }
    assert disagree == UPSTREAM_CONFIG_ONLY
    for c, s, d in boxed:  # and there, the defaults say what the verifier says
        if (c["gold"], c["pred"]) in UPSTREAM_CONFIG_ONLY:
            assert d == (s.accuracy == 1.0)
    # the deliberate deviation: an answer that is not boxed scores 0 (math-verify's prose anchors would read it)
    unboxed = [c for c in cases if "\\boxed" not in c["pred"]]
    samples = score_through_the_pool([(c["gold"], c["pred"]) for c in unboxed])
    assert len(unboxed) == 160 and all(s.accuracy == 0.0 and s.reason == "no_answer" for s in samples)


#: (gold, answer) plain decimals within 0.01 of each other, or equal only loosely: math-verify says different.
NEAR_MISSES = [
    ("0.5", "0.51"),
    ("3.14", "3.141"),
    ("2.5", "2.505"),
    ("1", "1.001"),
    ("10", "9.995"),
    ("-0.25", "-0.255"),
    ("100", "100.009"),
    ("0.125", "0.12"),
]


def test_the_fast_path_never_calls_a_near_miss_equal():
    assert [math_verify_reference(g, rf"\boxed{{{a}}}") for g, a in NEAR_MISSES] == [False] * len(NEAR_MISSES)
    # the fast path leaves unequal decimals to math-verify (None) or says False; never True
    assert all(quick_match(g, rf"\boxed{{{a}}}") in (False, None) for g, a in NEAR_MISSES)
    samples = score_through_the_pool([(g, rf"\boxed{{{a}}}") for g, a in NEAR_MISSES])
    assert [s.accuracy for s in samples] == [0.0] * len(NEAR_MISSES)


def test_the_fast_path_never_says_equal_where_math_verify_says_different():
    rng = random.Random(0)
    numbers = [
        "0",
        "7",
        "-3",
        "+4",
        "05",
        "12",
        "0.5",
        ".50",
        "1.0",
        "1",
        "2.50",
        "2.5",
        "1 000",
        "1,000",
        "1000",
    ]
    numbers += [str(rng.randint(-50, 50)) for _ in range(20)] + [
        f"{rng.uniform(-5, 5):.3f}" for _ in range(10)
    ]
    decided = 0
    for gold in numbers[:12] + numbers[15:25]:
        for answer in rng.sample(numbers, 12):
            quick = quick_match(gold, rf"\boxed{{{answer}}}")
            if quick is not None:
                decided += 1
                assert quick == math_verify_reference(gold, rf"\boxed{{{answer}}}"), (gold, answer)
    assert decided > 100  # the fast path does decide most plain numbers


@pytest.fixture()
def busy_cpus():
    """Three busy-loop processes (bounded to 120 s each) on this 2-core machine, stopped after the test."""
    code = "import time\nend = time.time() + 120\nwhile time.time() < end:\n    pass\n"
    import psutil

    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    deadline = time.monotonic() + 60  # the load is there once every hog has spun: an event, not a pause
    while any(psutil.Process(h.pid).cpu_times().user < 0.1 for h in hogs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(psutil.Process(h.pid).cpu_times().user >= 0.1 for h in hogs), "the busy loops did not start"
    yield hogs
    for hog in hogs:
        hog.kill()
        hog.wait()


def test_no_ordinary_answer_times_out_under_cpu_load(busy_cpus):
    plain = [c for c in _suite() if not PROSE_BOX.search(c["pred"]) or "\\boxed" in c["pred"]]
    ordinary = [(c["gold"], _as_completion(c["pred"])) for c in plain][:150]
    pathological = [("3", r"\boxed{\dfrac{5^{5^{5^{5^5}}}-4}{3}}"), ("3", r"\boxed{9^{9^{9^{9^9}}}}")]
    assert all(hog.poll() is None for hog in busy_cpus)  # the load is really there
    samples = score_through_the_pool(ordinary + pathological)  # the shipped limit: 2 s of CPU per job
    reasons = [s.reason for s in samples]
    assert reasons[: len(ordinary)].count("timeout") == 0
    assert reasons[len(ordinary) :] == ["timeout", "timeout"]
    expected = [math_verify_reference(g, c) for g, c in ordinary]
    assert [s.accuracy == 1.0 for s in samples[: len(ordinary)]] == expected
