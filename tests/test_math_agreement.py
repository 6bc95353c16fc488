"""The math verifier against math-verify used directly, through the worker pool as in training.

* the regressions found under load (golds corrupted on their way to the workers, a too-loose fast path,
  several boxes, golds read as sets) each get a case;
* a slice of math-verify's own test suite (``tests/data/math_verify_cases.json``, extracted from the
  huggingface/Math-Verify repository) must agree case by case;
* the exact fast path never says "equal" where math-verify says "different";
* with the CPUs busy (busy-loop processes), no ordinary answer times out, and pathological ones still do.
"""

from __future__ import annotations

import json
import random
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


def test_the_regressions_agree_with_math_verify():
    expected = [math_verify_reference(gold, completion) for gold, completion in REGRESSIONS]
    # the cases mean what they say: correct answers of relations and sets, and the loose fast path's cases
    assert expected[:7] == [True] * 7 and expected[7:9] == [False, False]
    assert expected[9:] == [True, False, True]
    samples = score_through_the_pool(REGRESSIONS)
    assert [s.accuracy == 1.0 for s in samples] == expected
    assert all(s.reason is None for s in samples), [s.reason for s in samples]


def _suite():
    cases = json.loads(CASES.read_text(encoding="utf-8"))
    return [c for c in cases if c["reference"] is not None]


def test_agrees_with_math_verify_on_its_own_test_suite():
    cases = _suite()
    assert len(cases) >= 250
    samples = score_through_the_pool([(c["gold"], c["prediction"]) for c in cases])
    boxed = [(c, s) for c, s in zip(cases, samples, strict=True) if "\\boxed" in c["prediction"]]
    disagree = [
        (c["source"], c["gold"], c["prediction"], c["reference"], s.accuracy, s.reason)
        for c, s in boxed
        if (s.accuracy == 1.0) != c["reference"]
    ]
    assert len(boxed) >= 200 and disagree == []
    assert sum(s.reason == "timeout" for s in samples) == 0
    # the deliberate deviation: an answer that is not boxed scores 0 (math-verify's prose anchors would read it)
    unboxed = [s for c, s in zip(cases, samples, strict=True) if "\\boxed" not in c["prediction"]]
    assert unboxed and all(s.accuracy == 0.0 and s.reason == "no_answer" for s in unboxed)


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
    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    time.sleep(0.5)
    yield hogs
    for hog in hogs:
        hog.kill()
        hog.wait()


def test_no_ordinary_answer_times_out_under_cpu_load(busy_cpus):
    ordinary = [(c["gold"], c["prediction"]) for c in _suite() if "\\boxed" in c["prediction"]][:150]
    pathological = [("3", r"\boxed{\dfrac{5^{5^{5^{5^5}}}-4}{3}}"), ("3", r"\boxed{9^{9^{9^{9^9}}}}")]
    assert all(hog.poll() is None for hog in busy_cpus)  # the load is really there
    samples = score_through_the_pool(ordinary + pathological)  # the shipped limit: 2 s of CPU per job
    reasons = [s.reason for s in samples]
    assert reasons[: len(ordinary)].count("timeout") == 0
    assert reasons[len(ordinary) :] == ["timeout", "timeout"]
    expected = [math_verify_reference(g, c) for g, c in ordinary]
    assert [s.accuracy == 1.0 for s in samples[: len(ordinary)]] == expected
