"""User verifiers and TRL reward functions join the registry: the two recipe keys, their checks before anything
loads, where they run (reward workers or in process), TRL's batch signature with real ``trl.rewards`` functions and
one written as open-r1 writes them, ``None`` as "not applicable", and ``orsta_trl.register_verifier``.

The contract every verifier keeps (range, garbage, threads, time limit) is tests/test_registry.py's, whose cases
include user verifiers; here are the parts only user verifiers have."""

from __future__ import annotations

import json
import os
import textwrap
import time

import pytest

import orsta_trl
from orsta_trl.data.records import DatasetError, load_records
from orsta_trl.errors import DataError, RecipeError
from orsta_trl.recipe import load_recipe
from orsta_trl.rewards import RewardRouter, RewardSettings
from orsta_trl.verifiers.registry import BUILT_IN, REGISTRY, load_user_verifiers

#: A user's modules written in the working folder, as the README tells: a per-sample function that says which
#: process ran it (``verifier_modules``), and batch functions written as open-r1 writes its rewards
#: (``reward_funcs``).
VERIFIERS = """
import json
import os


def whose_process(completion: str, ground_truth: str) -> dict:
    return {"accuracy": float(completion == ground_truth), "reason": f"pid:{os.getpid()}"}
"""
REWARDS = '''
import re


def tagged_answer_reward(completions, solution, **kwargs):
    """open-r1 style: 1.0 when the <answer> block equals the solution, None when there is no solution."""
    contents = [completion[0]["content"] for completion in completions]
    rewards = []
    for content, sol in zip(contents, solution):
        if sol is None:
            rewards.append(None)
            continue
        match = re.search(r"<answer>(.*?)</answer>", content, re.DOTALL)
        rewards.append(1.0 if match and match.group(1).strip() == sol else 0.0)
    return rewards


def columns_reward(completions, prompts, data_source, id, difficulty, **kwargs):
    """Reads the record's columns: 1.0 when the prompt is a list of messages and the extra column is set."""
    return [
        float(isinstance(p, list) and p[0]["role"] == "user" and d == "hard" and s == "toy" and bool(i))
        for p, d, s, i in zip(prompts, difficulty, data_source, id)
    ]


def overlong_penalty(completions, **kwargs):
    """open-r1 style negative reward: clipped into [0, 1] by the verifier contract."""
    return [-0.5 if len(c[0]["content"]) > 5 else 2.0 for c in completions]
'''


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """The working folder holds ``my_verifiers.py`` and ``my_rewards.py``; the registry is restored afterwards."""
    (tmp_path / "my_verifiers.py").write_text(textwrap.dedent(VERIFIERS))
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent(REWARDS))
    monkeypatch.chdir(tmp_path)
    saved = dict(REGISTRY)
    yield tmp_path
    REGISTRY.clear()
    REGISTRY.update(saved)


def _record(rid, verifier, gold, params=None, **extra):
    reward = {"verifier": verifier, "ground_truth": gold, **({"params": params} if params else {})}
    prompt = [{"role": "user", "content": f"question {rid}"}]
    return {"id": rid, "data_source": "toy", "prompt": prompt, "reward": reward, **extra}


def _recipe(tmp_path, **keys):
    return load_recipe(None, use_cpu=True, bf16=False, output_dir=str(tmp_path / "run"), **keys)


def test_recipe_keys_register_both_forms_named_after_the_functions(user_folder):
    _recipe(
        user_folder,
        verifier_modules=["my_verifiers"],
        reward_funcs=["trl.rewards.think_format_reward", "my_rewards.tagged_answer_reward"],
    )
    assert REGISTRY["whose_process"].isolated  # a top-level function of an importable module: workers
    assert REGISTRY["think_format_reward"].grader == "reward_func:think_format_reward"
    # every public function of a verifier module joins as a per-sample verifier; batch ones need reward_funcs
    with pytest.raises(
        RecipeError, match=r"verifier_modules: my_rewards: .*tagged_answer_reward.*reward_funcs"
    ):
        load_user_verifiers(["my_rewards"], [])


def test_a_verifier_subclass_in_a_verifier_module_joins_under_its_name(user_folder):
    (user_folder / "my_classes.py").write_text(
        textwrap.dedent(
            """
            from orsta_trl.verifiers.base import Verdict, Verifier


            class Loud(Verifier):
                name = "loud"
                answer_policy = "completion"
                short_answer = True

                def score(self, text, gold, params, ctx):
                    return Verdict(float(text.isupper()), 1.0)
            """
        )
    )
    (verifier,) = load_user_verifiers(["my_classes"])
    assert REGISTRY["loud"] is verifier and type(verifier).__name__ == "Loud"
    records = load_records([_record("a", "loud", None)])
    assert [s.accuracy for s in RewardRouter(records).score(records * 2, ["HEY", "hey"])] == [1.0, 0.0]


def test_two_verifiers_that_grade_themselves_under_one_grader_name_each_get_their_own_grade(user_folder):
    """The grader seam groups a batch's requests per grader; two user verifiers that both say ``grader =
    "mine"`` are still two graders (each batch asked once per verifier, never one with the other's requests)."""
    from orsta_trl.verifiers.base import Verdict, Verifier

    asked: list[tuple[str, list]] = []

    class Graded(Verifier):
        answer_policy = "completion"
        grader = "mine"
        reply: float

        def request(self, text, gold, params, record):
            return text

        def grade(self, requests):
            asked.append((self.name, list(requests)))
            return [self.reply] * len(requests)

        def score(self, text, gold, params, ctx, reply=None):
            return Verdict(reply, reply)

    class High(Graded):
        name, reply = "high", 1.0

    class Low(Graded):
        name, reply = "low", 0.25

    orsta_trl.register_verifier(None, High), orsta_trl.register_verifier(None, Low)
    records = load_records([_record("h", "high", None), _record("l", "low", None)])
    samples = RewardRouter(records).score(records * 2, ["a", "b", "c", "d"])
    assert [s.accuracy for s in samples] == [1.0, 0.25, 1.0, 0.25]
    assert sorted(asked) == [("high", ["a", "c"]), ("low", ["b", "d"])]


def test_recipe_errors_name_the_key_and_what_to_change(user_folder):
    with pytest.raises(RecipeError, match=r"verifier_modules: no module named 'my_rewardz'"):
        _recipe(user_folder, verifier_modules=["my_rewardz"])
    with pytest.raises(RecipeError, match=r"reward_funcs: 'my_rewards' has no function 'nope'"):
        _recipe(user_folder, reward_funcs=["my_rewards.nope"])
    with pytest.raises(RecipeError, match=r"'math' is a built-in verifier's name"):
        (user_folder / "clash.py").write_text("def math(completion, ground_truth):\n    return 1.0\n")
        _recipe(user_folder, verifier_modules=["clash"])
    with pytest.raises(ValueError, match="built-in verifier"):
        orsta_trl.register_verifier("count", lambda completion, ground_truth: 1.0)
    assert set(BUILT_IN) <= set(REGISTRY) and REGISTRY["math"].name == "math"


def test_params_are_checked_against_the_signature_when_records_load(user_folder):
    load_user_verifiers(["user_rewards"])
    ok = load_records([_record("a", "exact_answer", "Paris", {"case_sensitive": True})])
    assert ok[0].reward.params == {"case_sensitive": True}
    cases = [
        ({"case_sensitiv": True}, "reward.params.case_sensitiv", "did you mean 'case_sensitive'"),
        ({"case_sensitive": "yes"}, "reward.params.case_sensitive", "must be bool"),
    ]
    for params, field, message in cases:
        with pytest.raises(DatasetError) as caught:
            load_records([_record("a", "exact_answer", "Paris", params)])
        (error,) = caught.value.errors
        assert error.field == field and message in error.message, error
    (user_folder / "strict.py").write_text("def needs_k(completion, ground_truth, k: int):\n    return 1.0\n")
    load_user_verifiers(["strict"])
    with pytest.raises(DatasetError, match=r"reward.params.k.*missing: needs_k\(\) requires it"):
        load_records([_record("a", "needs_k", "x")])
    with pytest.raises(DatasetError, match=r"reward.params.k.*must be int"):
        load_records([_record("a", "needs_k", "x", {"k": 1.5})])


def test_a_picklable_function_runs_in_the_workers_under_the_time_limit(user_folder, capsys):
    load_user_verifiers(["my_verifiers", "user_rewards"])
    records = load_records([_record("a", "whose_process", "x"), _record("b", "graded_answer", 7)])
    router = RewardRouter(records, RewardSettings(reward_timeout_s=1.0, reward_workers=1))
    try:
        router.start()
        said = capsys.readouterr().out
        assert "verifier 'whose_process' runs in the reward workers" in said, said
        started = time.perf_counter()
        samples = router.score(
            [records[0], records[1], records[1]], ["x", "spin forever", "<answer>7</answer>"]
        )
        elapsed = time.perf_counter() - started
        router_wall_limit = router.pool.wall_limit_s
    finally:
        router.close()
    assert samples[0].accuracy == 1.0 and samples[0].reason.startswith("pid:")
    assert samples[0].reason != f"pid:{os.getpid()}"  # scored in a worker process
    assert samples[1].reason == "timeout" and samples[1].reward == 0.0  # the hang was killed at the limit
    assert samples[2].accuracy == 1.0 and samples[2].parts == {"brevity": pytest.approx(0.95)}
    # killed at 1 s of CPU time, or by the wall backstop when a loaded machine starves the worker of CPU
    assert elapsed < router_wall_limit + 5.0


def test_a_function_that_does_not_pickle_runs_in_process_and_says_why(user_folder, capsys):
    verifier = orsta_trl.register_verifier(
        "shout", lambda completion, ground_truth: float(completion.isupper())
    )
    assert not verifier.isolated
    records = load_records([_record("a", "shout", None)])
    router = RewardRouter(records)
    router.start()
    assert "verifier 'shout' runs in process (a lambda, closure or method" in capsys.readouterr().out
    assert [s.reward for s in router.score(records * 2, ["LOUD", "quiet"])] == [1.0, 0.0]
    assert f"pid:{os.getpid()}" == load_user_verifiers(["my_verifiers"])[0].score("x", "x", {}, None).reason


def test_trl_reward_functions_get_trls_batch_signature(user_folder):
    _recipe(
        user_folder,
        reward_funcs=[
            "trl.rewards.accuracy_reward",
            "trl.rewards.think_format_reward",
            "my_rewards.tagged_answer_reward",
            "my_rewards.columns_reward",
            "my_rewards.overlong_penalty",
        ],
    )
    records = load_records(
        [
            _record("acc", "accuracy_reward", r"$\frac{1}{2}$"),
            _record("acc_nogold", "accuracy_reward", "no math here"),
            _record("think", "think_format_reward", None),
            _record("tag", "tagged_answer_reward", "42"),
            _record("tag_none", "tagged_answer_reward", None),
            _record("cols", "columns_reward", None, extra={"difficulty": "hard"}),
            _record("long", "overlong_penalty", None),
        ]
    )
    by_id = {r.id: r for r in records}
    router = RewardRouter(records)
    texts = {
        "acc": [r"so \boxed{\frac{1}{2}}", r"\boxed{3}"],
        "acc_nogold": [r"\boxed{1}"],
        "think": ["<think>a</think>b", "b"],
        "tag": ["<answer>42</answer>", "<answer>41</answer>"],
        "tag_none": ["<answer>1</answer>"],
        "cols": ["anything"],
        "long": ["short", "a long one"],
    }
    pairs = [(by_id[rid], text) for rid, many in texts.items() for text in many]
    samples = router.score([r for r, _ in pairs], [t for _, t in pairs])
    got = {(s.id, s.text): (s.reward, s.reason) for s in samples}
    assert got == {
        ("acc", r"so \boxed{\frac{1}{2}}"): (1.0, None),
        ("acc", r"\boxed{3}"): (0.0, None),
        ("acc_nogold", r"\boxed{1}"): (0.0, "not_applicable"),  # TRL's own None: the gold does not parse
        ("think", "<think>a</think>b"): (1.0, None),
        ("think", "b"): (0.0, None),
        ("tag", "<answer>42</answer>"): (1.0, None),
        ("tag", "<answer>41</answer>"): (0.0, None),
        ("tag_none", "<answer>1</answer>"): (0.0, "not_applicable"),
        ("cols", "anything"): (1.0, None),
        ("long", "short"): (1.0, "out_of_range"),
        ("long", "a long one"): (0.0, "out_of_range"),
    }
    assert router.trl_rewards(samples)[2] is None  # not applicable reaches TRL as None, as in TRL


def test_through_trls_reward_protocol_one_call_per_function_per_batch(user_folder, monkeypatch):
    _recipe(user_folder, reward_funcs=["my_rewards.tagged_answer_reward"])
    import my_rewards

    calls = []
    real = my_rewards.tagged_answer_reward
    verifier = REGISTRY["tagged_answer_reward"]
    monkeypatch.setattr(verifier, "fn", lambda **kw: calls.append(len(kw["completions"])) or real(**kw))
    records = load_records([_record(str(i), "tagged_answer_reward", str(i)) for i in range(3)])
    router = RewardRouter(records)
    completions = [[{"role": "assistant", "content": f"<answer>{i % 2}</answer>"}] for i in range(3)]
    rewards = router(prompts=None, completions=completions, data_source=["toy"] * 3, id=["0", "1", "2"])
    assert rewards == [1.0, 1.0, 0.0] and calls == [3]


def test_a_failing_reward_function_scores_zero_with_a_reason(user_folder):
    (user_folder / "broken.py").write_text(
        "def raises(completions, **kwargs):\n    raise KeyError('solution')\n\n"
        "def short(completions, **kwargs):\n    return [1.0]\n"
    )
    _recipe(user_folder, reward_funcs=["broken.raises", "broken.short"])
    records = load_records([_record("a", "raises", None), _record("b", "short", None)])
    samples = RewardRouter(records).score(records * 2, ["x", "y", "z", "w"])
    assert [s.reason for s in samples] == [
        "verifier_error:KeyError",
        "verifier_error:wrong_length",
        "verifier_error:KeyError",
        "verifier_error:wrong_length",
    ]
    assert all(s.reward == 0.0 for s in samples)


def test_an_async_reward_function_runs_inside_a_running_event_loop_and_keeps_its_loop(user_folder):
    """As in Jupyter, whose event loop is already running: ``asyncio.run`` would raise there. One long-lived
    loop serves every batch, so a client bound to a loop (made once) stays usable."""
    import asyncio

    (user_folder / "asyncrewards.py").write_text(
        "import asyncio\n"
        "LOOPS = set()\n"
        "async def length_ok(completions, **kwargs):\n"
        "    LOOPS.add(id(asyncio.get_running_loop()))\n"
        "    await asyncio.sleep(0)\n"
        "    return [float(len(c[0]['content']) <= 2) for c in completions]\n"
    )
    _recipe(user_folder, reward_funcs=["asyncrewards.length_ok"])
    records = load_records([_record("a", "length_ok", None)])

    async def inside_a_running_loop():
        router = RewardRouter(records)
        first = router.score(records * 2, ["ab", "abc"])
        again = router.score(records, ["x"])
        return first + again

    samples = asyncio.run(inside_a_running_loop())
    assert [(s.reward, s.reason) for s in samples] == [(1.0, None), (0.0, None), (1.0, None)]
    import asyncrewards

    assert len(asyncrewards.LOOPS) == 1


def test_a_reward_function_that_requires_trainer_arguments_is_refused_at_load(user_folder):
    """Such a function would fail on every batch (``score`` and ``eval`` have no completion ids): refuse it now."""
    (user_folder / "needs_ids.py").write_text(
        "def overlong(completions, completion_ids, **kwargs):\n    return [0.0] * len(completions)\n\n"
        "def fine(completions, completion_ids=None, **kwargs):\n    return [1.0] * len(completions)\n"
    )
    with pytest.raises(
        RecipeError, match="overlong requires completion_ids, which only TRL's trainer passes"
    ):
        _recipe(user_folder, reward_funcs=["needs_ids.overlong"])
    _recipe(user_folder, reward_funcs=["needs_ids.fine"])  # a default is fine


def test_register_verifier_from_python(user_folder):
    def brevity(completion: str, ground_truth, limit: int = 10) -> float:
        return float(len(completion) <= limit)

    verifier = orsta_trl.register_verifier("brevity", brevity)
    assert REGISTRY["brevity"] is verifier and verifier.why_in_process.startswith("a lambda, closure")
    records = load_records([_record("a", "brevity", None, {"limit": 3})])
    assert [
        s.reward for s in orsta_trl.score(records, [{"id": "a", "data_source": "toy", "completion": "abcd"}])
    ] == [0.0]
    from trl.rewards import think_format_reward

    assert orsta_trl.register_verifier(
        None, think_format_reward
    ).grader  # a TRL function: told by `completions`


def test_short_answer_is_a_capability_user_verifiers_declare(user_folder):
    """The prompt pool, the choice filter and the QA converter ask the verifier, not a list of names."""
    from orsta_trl.data.convert.qa import qa
    from orsta_trl.data.filters import rule_choice, rules_config
    from orsta_trl.data.prompt_pool import apply_prompt_pool
    from orsta_trl.verifiers.registry import short_answer_verifiers

    load_user_verifiers(["user_rewards"])  # graded_answer declares short_answer; exact_answer does not
    assert short_answer_verifiers() == ("math", "count", "ocr", "graded_answer")
    records = load_records(
        [_record("a", "graded_answer", 7), _record("b", "exact_answer", "yes"), _record("c", "count", 3)]
    )
    pooled = apply_prompt_pool(records)
    assert [p.prompt != r.prompt for p, r in zip(pooled, records, strict=True)] == [True, False, True]
    yes = load_records([_record("d", "graded_answer", "yes"), _record("e", "exact_answer", "yes")])
    config = rules_config(None)["choice"]
    assert [rule_choice(r, config) for r in yes] == ["answer 'yes' is an option or true/false", None]
    (user_folder / "qa.jsonl").write_text('{"question": "How many?", "answer": "7"}\n')
    report = qa(user_folder / "qa.jsonl", user_folder / "out.jsonl", verifier="graded_answer")
    assert (
        report.written == 1
        and load_records([user_folder / "out.jsonl"])[0].reward.verifier.name == "graded_answer"
    )
    with pytest.raises(
        DataError, match=r"'exact_answer' is not one of \['math', 'count', 'ocr', 'graded_answer'\]"
    ):
        qa(user_folder / "qa.jsonl", user_folder / "out2.jsonl", verifier="exact_answer")


def test_commands_that_take_a_recipe_load_its_verifiers_first(user_folder):
    """``eval --recipe`` and ``filter difficulty --recipe`` read the recipe's own keys (``orsta_config_from``)
    before any record; ``check-data --recipe`` too (run in tests/test_user_verifiers_readme.py)."""
    from orsta_trl.recipe import orsta_config_from

    (user_folder / "r.yaml").write_text("verifier_modules: [my_verifiers]\nlearning_rate: 1.0e-3\n")
    with pytest.raises(
        DatasetError, match="your own verifier: name its module in the recipe's verifier_modules"
    ):
        load_records([_record("a", "whose_process", "x")])
    orsta_config_from(user_folder / "r.yaml")
    assert load_records([_record("a", "whose_process", "x")])[0].reward.verifier.name == "whose_process"


def test_eval_and_the_difficulty_filter_score_with_the_recipes_verifiers(user_folder, tiny_lm):
    """``eval --recipe`` and ``filter difficulty --recipe``: the records name a verifier only the recipe knows."""
    from orsta_trl.data.records import load_records as load
    from orsta_trl.difficulty import filter_difficulty

    (user_folder / "always.py").write_text(
        "def always(completion: str, ground_truth) -> float:\n    return 1.0\n"
    )
    (user_folder / "r.yaml").write_text("verifier_modules: [always]\n")
    data = user_folder / "d.jsonl"
    data.write_text("".join(json.dumps(_record(f"q{i}", "always", None)) + "\n" for i in range(2)))
    REGISTRY.pop("always", None)
    report = orsta_trl.evaluate(
        str(tiny_lm), [str(data)], max_new_tokens=4, recipe_path=str(user_folder / "r.yaml")
    )
    assert report["per_source"]["toy"]["accuracy"] == 1.0
    REGISTRY.pop("always")
    kept = user_folder / "kept.jsonl"
    result = filter_difficulty(
        data, kept, model=str(tiny_lm), k=2, keep="pass > 0.5", max_new_tokens=4,
        recipe=str(user_folder / "r.yaml"), show_progress=False,
    )  # fmt: skip
    assert sum(result.kept.values()) == 2 and [r.extra["pass_rate"] for r in load([kept])] == [1.0, 1.0]
