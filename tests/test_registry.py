"""The verifier contract, once, over the whole registry: every verifier declares an answer policy, survives a
pickle round trip (as it does on its way to a worker), gives the same verdict from 8 threads, never raises on
garbage, and keeps every part in [0, 1] with stable keys. Later fuzzing extends ``GARBAGE`` and ``CASES``.

User verifiers are held to the same contract: the per-sample functions of ``tests/user_rewards.py`` (loaded as a
recipe's ``verifier_modules``) and TRL's own ``accuracy_reward`` and ``think_format_reward`` (``reward_funcs``)
have cases here like the built-in ones. Adding a verifier to the package: its module, one registry line, a case."""

from __future__ import annotations

import json
import pickle
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orsta_trl.verifiers.adversarial import adversarial_completion
from orsta_trl.verifiers.answer import POLICIES
from orsta_trl.verifiers.base import Context, FieldError
from orsta_trl.verifiers.registry import BUILT_IN, REGISTRY, get_verifier, load_user_verifiers

USER = load_user_verifiers(
    ["user_rewards"], ["trl.rewards.accuracy_reward", "trl.rewards.think_format_reward"]
)

PLAN = '{"steps": [{"id": "a", "agent": "x", "task": "t", "depends_on": []}]}'
DOC = "# Title\n\nFirst paragraph.\n\n| a | b |\n|---|---|\n| 1 | 2 |"
BOX = [{"bbox_2d": [10, 10, 50, 50], "label": "cat"}]
#: (verifier, ground truth, params, completions): each completion is scored by the original and by the clone.
CASES = [
    (
        "math",
        "4",
        {},
        [r"<think>2+2</think><answer>\boxed{4}</answer>", r"\boxed{5}", r"\boxed{1}, \boxed{2}"],
    ),
    ("math", "x = 1, 2", {"format": "none"}, [r"\boxed{1}, \boxed{2}", r"\boxed{x=\pm 2}"]),
    ("count", 3, {}, ["<answer>3</answer>", "there are 4", r"\boxed{3}"]),
    ("count", 10, {"tolerance": 1}, ["<answer>11</answer>", "<answer>1,0</answer>"]),
    ("ocr", "stop", {"mode": "ned"}, ["<answer>stap</answer>", "stop"]),
    ("ocr", "abd", {"mode": "exact"}, ["<answer>abc</answer>", r"\boxed{abd}"]),
    (
        "detection",
        [{"bbox_2d": [0, 0, 10, 10], "label": "a"}],
        {"pred_coords": "original"},
        ['<answer>[{"bbox_2d": [0, 0, 10, 9], "label": "a"}]</answer>', "<answer>[]</answer>"],
    ),
    (
        "detection",
        BOX,
        {"matching": "greedy_iou_first", "pred_coords": "original"},
        ["<answer>" + json.dumps([{"bbox_2d": [12, 10, 50, 52], "label": "cat"}]) + "</answer>"],
    ),
    ("docparse", DOC, {}, [DOC, "# Title\n\nOther text.", "<answer></answer>"]),
    ("json", None, {"required_keys": ["q"]}, ['{"q": 1}', '```json\n{"x": 1}\n```', "not json"]),
    (
        "rewrite",
        "cheap flights to paris",
        {},
        ['{"rewritten_query": "low-cost airfare to Paris"}', "cheap flights to paris"],
    ),
    ("tool", "4", {}, [r"<think>t</think><answer>\boxed{4}</answer>", "<tool_call>{}</tool_call>"]),
    ("plan", None, {}, [PLAN, '{"steps": []}']),
    # without a reply (no judge asked) a judged completion scores 0 with judge_error; replies: tests/test_judge.py
    (
        "judge",
        {"reference": "a red square", "rubric": "names the colour"},
        {"judge": "tiny", "max_answer_chars": 300},
        ["red", ""],
    ),
    ("exact_answer", "Paris", {}, ["<answer>paris</answer>", "Paris", "<answer>Rome</answer>"]),
    ("graded_answer", 7, {"max_words": 5}, ["<answer>7</answer>", "it is 8", "a b c d e f g h 7"]),
    ("accuracy_reward", r"$\frac{1}{2}$", {}, [r"\boxed{\frac{1}{2}}", r"\boxed{0.5}", r"\boxed{2}"]),
    ("think_format_reward", None, {}, ["<think>x</think>y", "<think>x", "y"]),
]
GARBAGE = ("", "\x00\ud800", "{" * 500, "<answer>" * 50, "]" * 1000 + "[{", "\\boxed{" * 200, "</answer>" * 3)
CTX = Context(image_sizes=((100, 100),))
#: One completion that walks every verifier's lazy imports (box matching loads scipy) before anything is timed.
WARM_UP = '<think>w</think><answer>[{"bbox_2d": [10, 10, 50, 50], "label": "a"}] \\boxed{1}</answer>'


def test_every_registered_verifier_has_cases_and_a_declared_policy():
    assert {name for name, *_ in CASES} == set(BUILT_IN) | {v.name for v in USER}
    assert len(USER) == 4 and all(REGISTRY[v.name] is v for v in USER)
    for verifier in REGISTRY.values():
        assert verifier.answer_policy in POLICIES, verifier.name


@pytest.mark.parametrize(("name", "gt", "raw_params", "texts"), CASES, ids=[c[0] for c in CASES])
def test_pickle_threads_garbage_and_ranges(name, gt, raw_params, texts):
    verifier = get_verifier(name)
    params = verifier.parse_params(raw_params)
    gold = verifier.prepare(gt, params)
    clone, params2, gold2 = pickle.loads(pickle.dumps((verifier, params, gold)))
    for text in texts:
        expected = verifier.score(text, gold, params, CTX)
        assert set(expected.parts) == set(verifier.parts)
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _, t=text: clone.score(t, gold2, params2, CTX), range(16)))
        assert results == [expected] * 16, (name, text)
    for garbage in GARBAGE:
        verdict = verifier.score(garbage, gold, params, CTX)
        assert set(verdict.parts) == set(verifier.parts)
        assert 0.0 <= verdict.accuracy <= 1.0 and 0.0 <= verdict.format <= 1.0
        assert all(0.0 <= v <= 1.0 for v in verdict.parts.values())
        assert verdict.accuracy == 0.0 or name in ("docparse", "rewrite", "ocr"), (name, garbage[:20])
        assert not (verdict.reason or "").startswith("verifier_error"), (name, garbage[:20], verdict.reason)


def test_the_contract_can_fail():
    """A verifier name outside the registry is an error naming the nearest one, not a silent default."""
    with pytest.raises(FieldError, match="did you mean 'math'"):
        get_verifier("maths")


def test_tag_blocks_match_the_regex_they_replace_in_linear_time():
    import random
    import re
    import time

    from orsta_trl.verifiers.answer import answer_block, tag_blocks

    pattern = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
    rng = random.Random(0)
    pieces = ["<answer>", "</answer>", "a", "b<", ">", "</answer", "<answer", "\n"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        expected = [(m.start(), m.end(), m.group(1)) for m in pattern.finditer(text)]
        assert tag_blocks(text, "answer") == expected, text
        assert answer_block(text) == (expected[-1][2] if expected else None), text
    start = (
        time.process_time()
    )  # a cost claim: this process's CPU time, which other jobs on the machine do not stretch
    assert tag_blocks("<answer>" * 50_000, "answer") == []
    assert time.process_time() - start < 0.5  # the regex took seconds of CPU on this


#: The pool's wall backstop in the fuzz test, a hang detector: pathological answers never finish, so a CPU limit
#: that did not fire shows as 120 s. The margin over the 1 s CPU limit is for a loaded machine (two busy loops
#: and other test runs on 2 cores, load about 20, stretched 1 s of a worker's CPU to 11-14 s of wall).
HANG_S = 120.0


#: TRL's accuracy_reward runs in process, unchanged, under math-verify's own timeouts (up to 15 s a row), as in
#: TRL: it is outside the router's time limit, so outside the timed fuzz test (its contract cases run above).
NO_TIME_LIMIT = {"accuracy_reward"}


@pytest.fixture(scope="module")
def every_verifier(tiny_lm):
    """One record per registered verifier (the first case of each), behind one router with its worker pool;
    the judge is the tiny text LM (random weights: its replies are noise, scored as unparsable)."""
    from orsta_trl.data.records import Record, prepare_reward
    from orsta_trl.rewards import RewardRouter, RewardSettings

    first = {}
    for name, gt, raw_params, _ in CASES:
        if name not in NO_TIME_LIMIT:
            first.setdefault(name, (gt, raw_params))
    records = [
        Record(
            f"{name}0",
            f"fuzz_{name}",
            [],
            [],
            prepare_reward({"verifier": name, "ground_truth": gt, "params": p}),
            [(100, 100)],
        )
        for name, (gt, p) in sorted(first.items())
    ]
    judges = {
        "tiny": {"backend": "transformers", "model": str(tiny_lm), "device": "cpu", "max_new_tokens": 4}
    }
    router = RewardRouter(records, RewardSettings(reward_timeout_s=1.0, judges=judges))
    router.pool.wall_limit_s = HANG_S  # the wall backstop far off: only the CPU limit can cut
    router.start()
    router.score(records, [WARM_UP] * len(records))
    yield router, records
    router.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), extra=st.text(max_size=200), before=st.booleans())
def test_fuzzed_completions_never_raise_stay_in_range_and_return_in_time(every_verifier, seed, extra, before):
    """Adversarial completions (``verifiers/adversarial.py``) plus arbitrary text, through the router: every
    verifier at once, the isolated ones under their time limit in the pool."""
    import math
    import random
    import time

    router, records = every_verifier
    _, text = adversarial_completion(random.Random(seed))
    text = extra + text if before else text + extra
    start, start_cpu = time.perf_counter(), time.thread_time()
    samples = router.score(records, [text] * len(records))
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    for record, sample in zip(records, samples, strict=True):
        values = [sample.reward, sample.accuracy, sample.format, *sample.parts.values()]
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), (record.data_source, values)
        assert set(sample.parts) == set(record.reward.verifier.parts)
        assert not (sample.reason or "").startswith("verifier_error"), (record.data_source, sample.reason)
    # the in-process verifiers' cost, in CPU time of this thread (a busy machine does not stretch it)
    assert cpu < router.settings.reward_timeout_s + 2.0, f"{cpu:.2f}s of CPU on {text[:80]!r}"
    # the isolated ones were cut by their CPU limit: a limit that never fired would run to the backstop
    assert elapsed < HANG_S, f"{elapsed:.2f}s on {text[:80]!r}"
