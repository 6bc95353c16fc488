"""math, count and ocr verifiers; the worker pool's hard time limit; the router's weighting."""

from __future__ import annotations

import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from math_verify import parse, verify

from orsta_trl.data.records import Record, prepare_reward
from orsta_trl.verifiers.base import Context, FieldError
from orsta_trl.verifiers.count import CountVerifier
from orsta_trl.verifiers.maths import MathVerifier
from orsta_trl.verifiers.ocr import OcrVerifier
from orsta_trl.verifiers.pool import TIMED_OUT, Task, WorkerPool
from orsta_trl.verifiers.router import RewardRouter, RewardSettings

CTX = Context()
PATHOLOGICAL = r"<answer>\boxed{\dfrac{5^{5^{5^{5^5}}}-4}{3}}</answer>"


def math_verdict(text, gold, **params):
    verifier = MathVerifier()
    p = verifier.parse_params(params)
    return verifier.score(text, verifier.prepare(gold, p), p, CTX)


@pytest.mark.parametrize(
    "text, gold, accuracy, fmt, reason",
    [
        (r"<think>x</think><answer>\boxed{92}</answer>", "92", 1.0, 1.0, None),
        (r"<think>x</think><answer>\boxed{\frac{1}{2}}</answer>", "0.5", 1.0, 1.0, None),
        (r"<answer>\boxed{91}</answer>", "92", 0.0, 0.5, None),
        (r"\boxed{3} <answer>\boxed{4}</answer>", "4", 1.0, 0.5, None),  # answer block wins
        (r"<answer>\boxed{3}</answer> then \boxed{4}", "3", 1.0, 0.5, None),
        ("<answer>92</answer>", "92", 0.0, 0.5, "no_answer"),  # no box
        (r"<answer>\boxed{}</answer>", "92", 0.0, 0.5, "no_answer"),
        (r"\boxed{92", "92", 0.0, 0.0, "no_answer"),  # unclosed brace
        ("", "92", 0.0, 0.0, "no_answer"),
        (r"<think><think></think><answer>\boxed{-45}</answer>", "-45", 1.0, 0.75, None),
        (r"\boxed{\sqrt{2}^2}", "2", 1.0, 0.0, None),
    ],
)
def test_math_table(text, gold, accuracy, fmt, reason):
    verdict = math_verdict(text, gold)
    assert (verdict.accuracy, verdict.format, verdict.reason) == (accuracy, fmt, reason)


def test_math_format_none_and_bad_gold():
    assert math_verdict(r"\boxed{2}", "2", format="none").format == 1.0
    with pytest.raises(FieldError) as err:
        MathVerifier().parse_params({"format": "xml"})
    assert err.value.field == "reward.params.format"
    with pytest.raises(FieldError) as err:
        MathVerifier().parse_params({"fromat": "none"})
    assert "did you mean 'format'" in str(err.value)
    with pytest.raises(FieldError):
        MathVerifier().prepare(["1"], MathVerifier().parse_params({}))


@pytest.mark.parametrize(
    "gold, answer",
    [
        ("\\frac{1}{3}", "\\frac{1}{3}"),
        ("\\frac{1}{3}", "0.5"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("x^2+1", "1+x^2"),
        ("12", "12.0"),
        ("\\pi", "3.14"),
        ("[1, 2]", "[1,2]"),
        ("10", "11"),
        ("\\{1,2\\}", "\\{2,1\\}"),
    ],
)
def test_math_agrees_with_direct_math_verify(gold, answer):
    direct = verify(parse(f"\\boxed{{{gold}}}"), parse(f"\\boxed{{{answer}}}"))
    assert math_verdict(f"<answer>\\boxed{{{answer}}}</answer>", gold).accuracy == float(direct)


@pytest.mark.parametrize(
    "text, gold, tolerance, accuracy, reason",
    [
        ("<answer>7</answer>", 7, 0, 1.0, None),
        (r"<answer>I see 6 or \boxed{7}</answer>", 7, 0, 1.0, None),
        ("<answer>there are 3 red and 8 blue</answer>", 8, 0, 1.0, None),
        ("<answer>8</answer>", 7, 1, 1.0, None),
        ("<answer>9</answer>", 7, 1, 0.0, None),
        ("<answer>none</answer>", 7, 0, 0.0, "no_answer"),
        ("<answer>1,024</answer>", 1024, 0, 1.0, None),
        ("<answer>" + "9" * 40 + "</answer>", 7, 0, 0.0, "no_answer"),
        ("7", 7, 0, 1.0, None),
    ],
)
def test_count_table(text, gold, tolerance, accuracy, reason):
    verifier = CountVerifier()
    params = verifier.parse_params({"tolerance": tolerance})
    verdict = verifier.score(text, verifier.prepare(gold, params), params, CTX)
    assert (verdict.accuracy, verdict.reason) == (accuracy, reason)


def test_count_rejects_bad_ground_truth_and_params():
    verifier = CountVerifier()
    with pytest.raises(FieldError, match="ground_truth"):
        verifier.prepare("seven", verifier.parse_params({}))
    with pytest.raises(FieldError, match="tolerance"):
        verifier.parse_params({"tolerance": -1})


@pytest.mark.parametrize(
    "text, gold, params, accuracy",
    [
        ("<answer>Hello  World</answer>", "hello world", {}, 1.0),
        ("<answer>Hello World</answer>", "hello world", {"case_sensitive": True}, 0.0),
        ("<answer>captain</answer>", "capital", {"mode": "ned"}, 1 - 3 / 7),
        (r"the text says \boxed{STOP}", "stop", {}, 1.0),
        ("  stop \n", "stop", {}, 1.0),
        ("<answer></answer>", "stop", {"mode": "ned"}, 0.0),
    ],
)
def test_ocr_table(text, gold, params, accuracy):
    verifier = OcrVerifier()
    p = verifier.parse_params(params)
    verdict = verifier.score(text, verifier.prepare(gold, p), p, CTX)
    assert verdict.accuracy == pytest.approx(accuracy)


def test_verifiers_pickle_and_threads():
    cases = [
        (MathVerifier(), r"<answer>\boxed{4}</answer>", "4", {}),
        (CountVerifier(), "<answer>3</answer>", 3, {}),
        (OcrVerifier(), "<answer>abc</answer>", "abd", {"mode": "ned"}),
    ]
    for verifier, text, gold, params in cases:
        clone = pickle.loads(pickle.dumps(verifier))
        p = clone.parse_params(params)
        g = pickle.loads(pickle.dumps(clone.prepare(gold, p)))
        expected = verifier.score(text, g, p, CTX)
        with ThreadPoolExecutor(max_workers=8) as threads:
            results = list(threads.map(clone.score, [text] * 32, [g] * 32, [p] * 32, [CTX] * 32))
        assert results == [expected] * 32


def test_pool_kills_pathological_jobs_within_the_limit():
    verifier = MathVerifier()
    params = verifier.parse_params({})
    gold = verifier.prepare("3", params)
    slow = [verifier.slow_job(PATHOLOGICAL + f" #{k}", gold, params, CTX) for k in range(3)]
    assert slow[0] == (gold, r"\dfrac{5^{5^{5^{5^5}}}-4}{3}")
    ordinary = [verifier.slow_job(rf"<answer>\boxed{{{i}/1}}</answer>", gold, params, CTX) for i in range(20)]
    tasks = [
        Task("math", job)
        for job in [slow[0], (gold, "x^{5^{5^{5^{5}}}}"), (gold, "7^{7^{7^{7^{7}}}}")] + ordinary
    ]
    pool = WorkerPool(timeout_s=1.0, workers=2)
    try:
        pool.map(tasks[3:5])  # start the workers
        start = time.perf_counter()
        results = pool.map(tasks)
        elapsed = time.perf_counter() - start
    finally:
        pool.close()
    assert results[:3] == [TIMED_OUT] * 3
    assert results[3:] == [i == 3 for i in range(20)]
    assert elapsed < 1.0 + 1.0, f"pathological batch took {elapsed:.2f}s"


def test_router_scores_a_pathological_batch_within_the_limit():
    record = Record("m1", "toy_math", [], [], prepare_reward({"verifier": "math", "ground_truth": "3"}))
    router = RewardRouter.from_records([record], RewardSettings(reward_timeout_s=1.0))
    texts = [
        PATHOLOGICAL,
        r"<answer>\boxed{6/2}</answer>",
        r"<answer>\boxed{3}</answer>",
        "nothing",
        PATHOLOGICAL,
    ]
    try:
        router.score([record.key] * 2, texts[1:3])  # start the pool
        start = time.perf_counter()
        scored = router.score([record.key] * len(texts), texts)
        elapsed = time.perf_counter() - start
    finally:
        router.close()
    assert [s.verdict.reason for s in scored] == ["timeout", None, None, "no_answer", "timeout"]
    assert [s.reward for s in scored] == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert elapsed < 2.0


def test_reward_weighting_and_load_time_errors():
    spec = prepare_reward(
        {
            "verifier": "ocr",
            "ground_truth": "abcd",
            "accuracy_weight": 3.0,
            "format_weight": 1.0,
            "params": {"mode": "ned"},
        }
    )
    verdict = spec.verifier.score("<answer>abce</answer>", spec.gold, spec.params, CTX)
    assert spec.combine(verdict) == pytest.approx((3 * 0.75 + 1 * 1.0) / 4)
    for bad, field in [
        ({"verifier": "maths", "ground_truth": "1"}, "reward.verifier"),
        ({"verifier": "math", "ground_truth": "1", "params": {"fmt": "none"}}, "reward.params.fmt"),
        (
            {"verifier": "math", "ground_truth": "1", "accuracy_weight": 0, "format_weight": 0},
            "reward.accuracy_weight",
        ),
        ({"verifier": "math", "ground_truth": "1", "accuracy_weight": -1}, "reward.accuracy_weight"),
        ({"verifier": "ocr", "ground_truth": "a", "extra_weights": {"edit": 1}}, "reward.extra_weights.edit"),
        ({"verifier": "math"}, "reward.ground_truth"),
        ({"verifier": "math", "ground_truth": "1", "weights": {}}, "reward.weights"),
    ]:
        with pytest.raises(FieldError) as err:
            prepare_reward(bad)
        assert err.value.field == field
    with pytest.raises(FieldError, match="did you mean 'math'"):
        prepare_reward({"verifier": "maths", "ground_truth": "1"})
