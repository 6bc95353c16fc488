"""math, count and ocr verifiers; the worker pool's hard time limit; the router's weighting."""

from __future__ import annotations

import os
import time

import pytest
from math_verify import parse, verify

from orsta_trl.data.records import Record, prepare_reward
from orsta_trl.rewards import RewardRouter, RewardSettings, combine
from orsta_trl.rewards.pool import TIMED_OUT, Task, WorkerPool, default_workers
from orsta_trl.verifiers.base import Context, FieldError
from orsta_trl.verifiers.count import CountVerifier
from orsta_trl.verifiers.maths import MathVerifier
from orsta_trl.verifiers.ocr import OcrVerifier

CTX = Context()
#: A hang detector for the pool tests, set as their wall backstop: pathological jobs never finish, so a CPU limit
#: that did not fire shows as a batch cut only at 120 s. The margin over the 1 s CPU limit is for a loaded
#: machine: with two busy loops beside the tests and other test runs on 2 cores (load about 20), 1 s of a
#: worker's CPU took up to 14 s of wall, and the pathological batch test took 57 s in all; 120 s is twice that.
HANG_S = 120.0
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


def test_pool_kills_pathological_jobs_within_the_limit():
    verifier = MathVerifier()
    params = verifier.parse_params({})
    gold = verifier.prepare("3", params)
    slow = [verifier.slow_job(PATHOLOGICAL + f" #{k}", gold, params, CTX) for k in range(3)]
    assert slow[0] == ("3", r"\boxed{\dfrac{5^{5^{5^{5^5}}}-4}{3}}")  # the gold's text and the answer region
    assert slow[1] == slow[0]  # text outside the answer block does not change the job
    ordinary = [verifier.slow_job(rf"<answer>\boxed{{{i}/1}}</answer>", gold, params, CTX) for i in range(20)]
    tasks = [Task("math", job) for job in [slow[0], ("3", r"\boxed{9^{9^{9^{9^9}}}}")] + ordinary]
    # as many workers as this machine's cores; the wall backstop far off, so that only the CPU limit can cut
    pool = WorkerPool(timeout_s=1.0, workers=2, wall_limit_s=HANG_S)
    try:
        pool.map(tasks[2:4])  # start the workers
        start = time.perf_counter()
        results = pool.map(tasks)
        elapsed = time.perf_counter() - start
    finally:
        pool.close()
    assert results[:2] == [TIMED_OUT] * 2
    assert results[2:] == [i == 3 for i in range(20)]
    assert elapsed < HANG_S, f"pathological batch took {elapsed:.2f}s: the CPU limit did not cut it"
    assert pool.timeouts == 2 and pool.replaced == 2
    assert max(pool.job_cpu_s[-20:]) < 1.0  # the ordinary jobs cost little CPU: they were not held up


def test_a_killed_workers_replacement_is_warm_and_takes_the_next_job_at_once():
    pool = WorkerPool(timeout_s=1.0, workers=1, wall_limit_s=HANG_S)
    try:
        pool.start()
        first = pool._pool[0]
        assert first.ready and first.warm_up_cpu_s is not None  # warmed before it reported ready
        start = time.perf_counter()
        results = pool.map(
            [Task("math", ("3", r"\boxed{9^{9^{9^{9^9}}}}")), Task("math", ("x = 1, 2", r"\boxed{2, 1}"))]
        )
        elapsed = time.perf_counter() - start
        replacement = pool._pool[0]
    finally:
        pool.close()
    assert results == [TIMED_OUT, True]
    assert replacement is not first and replacement.jobs_done == 1 and replacement.warm_up_cpu_s is not None
    # the spare was warm already: its first job costs what a warm job costs (a cold one pays 0.5-1.3 s of CPU)
    assert pool.job_cpu_s[-1] < 0.3, pool.job_cpu_s
    assert elapsed < HANG_S, f"the pathological job was not cut by its CPU limit ({elapsed:.2f}s)"


def test_pool_size_defaults_to_the_cores_of_one_rank(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert default_workers() == cores and WorkerPool().max_workers == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))
    assert default_workers() == 1  # eight ranks on a small node still get one worker each
    assert WorkerPool(workers=3).max_workers == 3  # an explicit size is kept, never grown past the cores


def test_router_scores_a_pathological_batch_within_the_limit():
    record = Record("m1", "toy_math", [], [], prepare_reward({"verifier": "math", "ground_truth": "3"}))
    router = RewardRouter([record], RewardSettings(reward_timeout_s=1.0))
    router.pool.wall_limit_s = HANG_S  # the wall backstop far off: only the CPU limit can cut
    texts = [
        PATHOLOGICAL,
        r"<answer>\boxed{6/2}</answer>",
        r"<answer>\boxed{3}</answer>",
        "nothing",
        PATHOLOGICAL,
    ]
    try:
        router.score([record] * 2, texts[1:3])  # start the pool
        start = time.perf_counter()
        scored = router.score([record] * len(texts), texts)
        elapsed = time.perf_counter() - start
    finally:
        router.close()
    assert [s.verdict.reason for s in scored] == ["timeout", None, None, "no_answer", "timeout"]
    assert [s.reward for s in scored] == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert elapsed < HANG_S, f"{elapsed:.2f}s: the CPU limit did not cut the pathological answers"


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
    assert combine(spec, verdict) == pytest.approx((3 * 0.75 + 1 * 1.0) / 4)
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
