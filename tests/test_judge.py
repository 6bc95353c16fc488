"""The ``judge`` verifier and its backends: the reply parser (a table), prompts and ground truths, the
``transformers`` backend with the tiny text LM as the judge, the ``openai`` backend against a real HTTP server on
127.0.0.1 (concurrency, timeouts, retries, keys, readiness), the router's batching, cache and skip rule, and the
checks that run before training."""

from __future__ import annotations

import json
import time

import pytest
from judge_server import JudgeServer

from orsta_trl.data.records import DatasetError, load_records
from orsta_trl.errors import NotReady, RecipeError
from orsta_trl.recipe import load_recipe
from orsta_trl.rewards.judges import JudgeFailure, close_backend, get_backend, judge_config
from orsta_trl.rewards.router import RewardRouter, check_ready
from orsta_trl.verifiers.base import Context, FieldError, RewardSettings
from orsta_trl.verifiers.judge import JudgeGold, JudgeParams, build_prompt, parse_reply
from orsta_trl.verifiers.registry import get_verifier

# ---- the reply parser: (reply, parse, scale) -> score in [0, 1] or None (unparsable)
PARSE_TABLE = [
    ("Score: 7/10", "number", (0, 10), 0.7),
    ("Score: 7", "number", (0, 10), 0.7),
    ("score = 3.5", "number", (0, 10), 0.35),
    ("**Rating:** 4 out of 5", "number", (1, 5), 0.75),
    ("Final grade - 9", "number", (0, 10), 0.9),
    ("[[8]]", "number", (0, 10), 0.8),
    ("Feedback: fine. [RESULT] 4", "number", (1, 5), 0.75),
    ("I would give it 8 out of 10.", "number", (0, 10), 0.8),
    ("The caption names 3 objects of 4; overall 6", "number", (0, 10), 0.6),  # prose: the last number
    ("It lists 12 items. Score: 2", "number", (0, 10), 0.2),  # a label beats other numbers
    ("85/100", "number", (0, 10), 0.85),  # another denominator: read as a share
    ("7", "number", (0, 10), 0.7),
    ("10", "number", (0, 10), 1.0),
    ("0", "number", (0, 10), 0.0),
    ("<think>maybe 2? no</think>Score: 9", "number", (0, 10), 0.9),  # reasoning is dropped
    ("Score: 12", "number", (0, 10), None),  # out of scale: not clipped
    ("Score: -1", "number", (0, 10), None),
    ("12/10", "number", (0, 10), None),
    ("Score: 11/10", "number", (0, 10), None),
    ("0.5", "number", (0, 1), 0.5),
    ("I cannot grade this.", "number", (0, 10), None),
    ("", "number", (0, 10), None),
    ("Yes", "yes_no", (0, 10), 1.0),
    ("no.", "yes_no", (0, 10), 0.0),
    ("**Yes**, the answer matches the reference.", "yes_no", (0, 10), 1.0),
    ("The answer is wrong, so no.", "yes_no", (0, 10), 0.0),
    ("Reasoning: yes it mentions a cat but no dog. Verdict: no", "yes_no", (0, 10), 0.0),
    ("True", "yes_no", (0, 10), 1.0),
    ("Partly yes, partly no.", "yes_no", (0, 10), None),  # both: ambiguous
    ("Maybe.", "yes_no", (0, 10), None),
    ("yesterday it was fine", "yes_no", (0, 10), None),  # words, not substrings
]


@pytest.mark.parametrize(("reply", "parse", "scale", "expected"), PARSE_TABLE)
def test_reply_parser(reply, parse, scale, expected):
    got = parse_reply(reply, parse, tuple(float(v) for v in scale))
    assert got == pytest.approx(expected) if expected is not None else got is None


def judge_record(rid="r1", source="captions", judge="tiny", params=None, gold="a red square", **extra):
    return {
        "id": rid,
        "data_source": source,
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Describe the image."},
        ],
        "reward": {"verifier": "judge", "ground_truth": gold, "params": {"judge": judge, **(params or {})}},
        **extra,
    }


def test_prompt_ground_truth_and_params():
    verifier = get_verifier("judge")
    params = verifier.parse_params(
        {"judge": "j", "template": "Q={question} R={reference} U={rubric} A={answer} {{x}}"}
    )
    gold = verifier.prepare({"rubric": "mentions the colour"}, params)
    assert verifier.prompt("<answer> red </answer>", gold, params, "What colour?") == (
        "Q=What colour? R=(none) U=mentions the colour A=red {x}"
    )
    assert (
        verifier.prompt("<answer>  </answer>", gold, params, "q") is None
    )  # no answer: the judge is not asked
    assert build_prompt("{answer}", "", JudgeGold("r"), "x" * 5) == "xxxxx"
    cut = verifier.parse_params({"judge": "j", "max_answer_chars": 3, "template": "{answer}"})
    assert verifier.prompt("abcdef", gold, cut, "q") == "abc"
    bad = [
        ({"template": "{answr}"}, "reward.params.template"),
        ({"template": "no answer field"}, "reward.params.template"),
        ({"template": "{answer"}, "reward.params.template"),
        ({"scale": [10, 0]}, "reward.params.scale"),
        ({"scale": [0, True]}, "reward.params.scale"),
        ({"parse": "yesno"}, "reward.params.parse"),
        ({"judge": ""}, "reward.params.judge"),
        ({"judg": "x"}, "reward.params.judg"),
    ]
    for raw, field in bad:
        with pytest.raises(FieldError) as info:
            verifier.parse_params({"judge": "j", **raw})
        assert info.value.field == field, raw
    for truth, field in [
        (3, "reward.ground_truth"),
        ({"reference": ""}, "reward.ground_truth"),
        ({"refrence": "x"}, "reward.ground_truth.refrence"),
        ({"rubric": 1}, "reward.ground_truth.rubric"),
    ]:
        with pytest.raises(FieldError) as info:
            verifier.prepare(truth, JudgeParams(judge="j"))
        assert info.value.field == field, truth


def test_verdicts_from_replies():
    verifier, ctx = get_verifier("judge"), Context()
    params, gold = JudgeParams(judge="j"), JudgeGold("a cat")
    ok = verifier.score("<answer>a cat</answer>", gold, params, ctx, reply="Score: 8/10")
    assert (ok.accuracy, ok.format, dict(ok.parts), ok.reason) == (
        0.8,
        1.0,
        {"judge_score": 0.8, "judge_valid": 1.0},
        None,
    )
    bad = verifier.score("a cat", gold, params, ctx, reply="no idea")
    assert (bad.accuracy, bad.parts["judge_valid"], bad.reason) == (0.0, 0.0, "judge_unparsable")
    assert bad.detail == "no idea" and bad.as_dict()["detail"] == "no idea"  # what the judge said, kept
    rambling = verifier.score("a cat", gold, params, ctx, reply="I think\n" + "hmm " * 100)
    assert rambling.detail.startswith("I think hmm hmm") and len(rambling.detail) == 200
    assert rambling.detail.endswith("...") and ok.detail is None
    assert verifier.score("a cat", gold, params, ctx).reason == "judge_error"  # no reply at all
    assert verifier.score("", gold, params, ctx, reply="Score: 9").reason == "no_answer"


def test_recipe_judges_are_checked_with_the_recipe(tmp_path):
    base = {"use_cpu": True, "bf16": False, "output_dir": str(tmp_path)}
    cases = [
        (
            {"judges": {"j": {"backend": "vllm", "model": "m"}}},
            "judges.j.backend: unknown judge backend 'vllm'",
        ),
        ({"judges": {"j": {"backend": "openai", "model": "m"}}}, "judges.j.url: required"),
        (
            {"judges": {"j": {"backend": "openai", "model": "m", "url": "h", "max_concurency": 2}}},
            "did you mean 'max_concurrency'",
        ),
        (
            {"judges": {"j": {"backend": "transformers", "model": "m", "batch_size": 0}}},
            "judges.j.batch_size: must be an integer >= 1",
        ),
        (
            {"judges": {"j": {"backend": "openai", "model": "m", "url": "http://h", "timeout_s": 0}}},
            "judges.j.timeout_s",
        ),
        ({"judge_failure": "ignore"}, "judge_failure must be 'zero' or 'skip'"),
    ]
    for keys, message in cases:
        with pytest.raises(RecipeError, match=None) as info:
            load_recipe(None, **base, **keys)
        assert message in str(info.value), (keys, str(info.value))
    recipe = load_recipe(
        None,
        **base,
        judges={"j": {"backend": "openai", "model": "m", "url": "http://h/v1"}},
        judge_failure="skip",
    )
    settings = recipe.orsta.reward_settings()
    assert settings.judge_failure == "skip" and settings.judges["j"]["url"] == "http://h/v1"


def test_a_record_naming_an_undefined_judge_fails_before_training(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(judge_record(judge="gpt")) + "\n" + json.dumps(judge_record("r2", judge="tiny")) + "\n"
    )
    records = load_records(path)
    settings = RewardSettings(
        judges={
            "tiny": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m"},
            "gpt4": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m"},
        }
    )
    with pytest.raises(DatasetError) as info:
        check_ready(records, settings)
    (error,) = info.value.errors
    assert (error.location, error.data_source, error.record_id, error.field) == (
        f"{path}:1",
        "captions",
        "r1",
        "reward.params.judge",
    )
    assert "unknown judge 'gpt' (did you mean 'gpt4'?)" in error.message


# ---- the transformers backend, with the tiny text LM as the judge


def transformers_settings(model, **keys) -> RewardSettings:
    return RewardSettings(
        judges={"tiny": {"backend": "transformers", "model": str(model), "device": "cpu", **keys}}
    )


def test_transformers_judge_scores_through_the_router(sevens_judge, tiny_lm):
    records = load_records(
        [
            judge_record("a"),
            judge_record("b", params={"scale": [0, 100]}),
            judge_record("c", source="other", params={"parse": "yes_no"}),
        ]
    )
    router = RewardRouter(
        records, transformers_settings(sevens_judge, max_new_tokens=1, batch_size=2, cache=16)
    )
    try:
        router.start()
        texts = ["<answer>a red square</answer>", "a red square", "a red square", "", "a blue circle\ud800"]
        rows = [records[0], records[0], records[1], records[0], records[2]]
        samples, stats = router._score(rows, texts)
        assert [s.accuracy for s in samples] == pytest.approx([0.7, 0.7, 0.07, 0.0, 0.0])
        assert [s.reason for s in samples] == [
            None,
            None,
            None,
            "no_answer",
            "judge_unparsable",
        ]  # "7" is not yes/no
        assert samples[0].parts == {"judge_score": 0.7, "judge_valid": 1.0}
        assert samples[4].detail == "7" and samples[0].detail is None  # the unparsable reply, kept
        # the first three completions give one prompt (same question, reference and answer; the scale is
        # applied to the reply): sent once; the empty answer is never sent; "a blue circle?" is the other one
        # (its lone surrogate is replaced: the tokenizer would reject it)
        assert stats.requests["tiny"] == 2 and stats.cache_hits["tiny"] == 0
        assert set(stats.seconds) == {"captions", "other"} and stats.failures == {}
        again, stats = router._score(rows[:3], texts[:3])
        assert stats.requests["tiny"] == 0 and stats.cache_hits["tiny"] == 1  # kept across steps
        assert [s.accuracy for s in again] == pytest.approx([0.7, 0.7, 0.07])
    finally:
        router.close()
    # the random tiny LM itself replies with noise: unparsable, counted, scored 0, never an exception
    router = RewardRouter(records[:1], transformers_settings(tiny_lm, max_new_tokens=4))
    try:
        router.start()
        (sample,) = router.score(records[:1], ["a red square"])
        assert sample.reward == 0.0 and sample.reason == "judge_unparsable"
    finally:
        router.close()


def test_transformers_judge_failures(sevens_judge, tmp_path):
    records = load_records([judge_record()])
    with pytest.raises(NotReady, match="cannot load the transformers model"):
        check_ready(records, transformers_settings(tmp_path / "no-such-model"))
    settings = transformers_settings(sevens_judge, max_new_tokens=8, timeout_s=1e-6)
    router = RewardRouter(records, settings)
    try:
        (sample,) = router.score(records, ["a red square"])
        assert (sample.reward, sample.reason) == (0.0, "judge_timeout")
        assert router.trl_rewards([sample]) == [0.0]  # judge_failure: zero
        skip = RewardRouter(records, RewardSettings(judges=settings.judges, judge_failure="skip"))
        assert skip.trl_rewards([sample]) == [None]  # TRL leaves it out of the advantage
    finally:
        router.close()
    # a prompt the tokenizer rejects fails alone, not its whole batch
    config = judge_config(
        "tiny", {"backend": "transformers", "model": str(sevens_judge), "max_new_tokens": 1}
    )
    try:
        replies = get_backend(config).generate(["fine", "bad \ud800", "also fine"])
    finally:
        close_backend(config)
    assert replies[0] == replies[2] == "7"
    assert isinstance(replies[1], JudgeFailure) and replies[1].reason == "judge_error"


# ---- the openai backend against a real server on 127.0.0.1


def openai_settings(url, **keys) -> RewardSettings:
    return RewardSettings(
        judges={"tiny": {"backend": "openai", "url": url, "model": "tiny-judge", "max_new_tokens": 1, **keys}}
    )


def many_records(n):
    return load_records([judge_record(f"q{i}", gold=f"answer {i}") for i in range(n)])


def test_openai_judge_runs_requests_concurrently_up_to_the_bound(sevens_judge):
    records = many_records(9)
    with JudgeServer(sevens_judge, delay_s=0.4) as server:
        router = RewardRouter(records, openai_settings(server.url, max_concurrency=3))
        try:
            router.start()
            samples = router.score(records, ["an answer"] * 9)
        finally:
            router.close()
    assert [s.accuracy for s in samples] == pytest.approx([0.7] * 9)
    # not one after another, as the server saw it: three requests in flight at once, never more (a wall-clock
    # bound would say the same only on an idle machine)
    assert server.requests == 9 and server.max_in_flight == 3
    assert server.auth == [None] * 9  # no api_key_env: no key sent


def test_openai_judge_times_out_and_retries(sevens_judge, monkeypatch):
    records = many_records(2)
    with JudgeServer(sevens_judge, delay_s=3.0) as server:
        router = RewardRouter(records, openai_settings(server.url, timeout_s=0.3, retries=0))
        try:
            started = time.perf_counter()
            samples = router.score(records, ["x", "y"])
            # the 0.3 s limit fired (the reasons below), and the call did not wait for the server's 3 s answer;
            # the 2.7 s between them is the margin for a loaded machine
            assert time.perf_counter() - started < 3.0
        finally:
            router.close()
    assert [s.reason for s in samples] == ["judge_timeout", "judge_timeout"]
    assert [s.reward for s in samples] == [0.0, 0.0]

    monkeypatch.setenv("TINY_JUDGE_KEY", "sk-test")
    with JudgeServer(sevens_judge, fail=lambda n: n == 1) as server:  # fails the first request once
        settings = openai_settings(server.url, retries=2, backoff_s=0.05, api_key_env="TINY_JUDGE_KEY")
        router = RewardRouter(records[:1], settings)
        try:
            (sample,) = router.score(records[:1], ["x"])
        finally:
            router.close()
    assert (sample.accuracy, sample.reason) == (0.7, None)
    assert server.requests == 2 and server.auth == ["Bearer sk-test"] * 2

    with JudgeServer(sevens_judge, fail=lambda n: True) as server:  # always overloaded: retries run out
        router = RewardRouter(records[:1], openai_settings(server.url, retries=1, backoff_s=0.05))
        try:
            samples, stats = router._score(records[:1], ["x"])
        finally:
            router.close()
    assert samples[0].reason == "judge_error" and server.requests == 2
    assert stats.failures == {"captions": 1}


def test_openai_judge_that_cannot_answer_fails_before_training(sevens_judge, monkeypatch):
    records = load_records([judge_record()])
    with JudgeServer(sevens_judge) as server:
        url = server.url
        check_ready(records, openai_settings(url))  # ready
        with pytest.raises(NotReady, match="serves \\['tiny-judge'\\], not 'big-judge'"):
            check_ready(
                records,
                RewardSettings(judges={"tiny": {"backend": "openai", "url": url, "model": "big-judge"}}),
            )
        monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
        with pytest.raises(NotReady, match="NO_SUCH_KEY_VAR"):
            check_ready(records, openai_settings(url + "/", api_key_env="NO_SUCH_KEY_VAR"))
    started = time.perf_counter()
    with pytest.raises(NotReady, match=f"cannot reach {url}"):  # the server is gone: connection refused
        check_ready(records, openai_settings(url, timeout_s=10))
    # refused at once: a check that waited out its 10 s timeout (or retried) would take 10 s or more; the
    # rest of those 10 s is the margin for a loaded machine
    assert time.perf_counter() - started < 10


def test_skip_hands_none_to_trl(sevens_judge):
    records = many_records(3)
    with JudgeServer(sevens_judge, fail=lambda n: n == 2) as server:
        router = RewardRouter(
            records,
            RewardSettings(
                judges=openai_settings(server.url, retries=0, max_concurrency=1).judges, judge_failure="skip"
            ),
        )
        logged = {}
        try:
            rewards = router(
                completions=["a", "b", "c"],
                data_source=["captions"] * 3,
                id=["q0", "q1", "q2"],
                log_metric=lambda name, value: logged.__setitem__(name, value),
            )
        finally:
            router.close()
    assert rewards == [pytest.approx(0.7), None, pytest.approx(0.7)]
    assert logged["judge/captions/failures"] == 1.0 and logged["judge/tiny/requests"] == 3.0
    assert logged["judge/captions/seconds"] > 0


def test_the_judge_recipe_serves_its_judge_apart_from_the_policy():
    from pathlib import Path

    from orsta_trl.rewards.judges import judge_configs

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes/judge_caption_7b.yaml", check=True)
    (config,) = judge_configs(recipe.orsta.judges).values()
    assert (config.backend, config.url, config.retries) == ("openai", "http://127.0.0.1:8000/v1", 2)
    assert recipe.orsta.judge_failure == "skip" and recipe.grpo.use_vllm
    # 7 training ranks: every generation batch must hold whole prompt groups
    assert (7 * recipe.grpo.per_device_train_batch_size) % recipe.grpo.num_generations == 0


def test_readiness_falls_back_to_a_one_token_chat_when_models_fails(sevens_judge):
    """A server whose ``GET /models`` fails (HTTP 500) is asked a one-token chat instead, and is ready when
    that answers; when the chat fails too, it is not."""
    records = many_records(1)
    with JudgeServer(sevens_judge, models_status=500) as server:
        check_ready(records, openai_settings(server.url))
        assert server.requests == 1  # the one chat request (GET /models is not counted)
    with JudgeServer(sevens_judge, models_status=500, fail=lambda n: True) as server:
        with pytest.raises(NotReady, match="does not answer a chat request"):
            check_ready(records, openai_settings(server.url))


def test_openai_judge_against_transformers_serve(sevens_judge, tmp_path):
    """``transformers serve`` (the serving extra, offline) as the judge server: readiness and scores, whatever
    its ``/v1/models`` answers (HTTP 500 without a hub cache folder in transformers 5.17; the fallback to a
    one-token chat is tested on its own below)."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "no-hub-cache"),
        "OMP_NUM_THREADS": "1",
    }
    command = [str(Path(sys.executable).parent / "transformers"), "serve", str(sevens_judge)]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        records = load_records(
            [judge_record(f"q{i}", gold=f"ref {i}", params={"scale": [0, 100]}) for i in range(4)]
        )
        settings = RewardSettings(
            judges={
                "tiny": {
                    "backend": "openai",
                    "url": url,
                    "model": str(sevens_judge),
                    "max_new_tokens": 2,
                    "max_concurrency": 4,
                }
            }
        )
        router = RewardRouter(records, settings)
        try:
            router.start()  # ready: the one-token chat answered
            samples = router.score(records, ["a", "b", "c", "d"])
        finally:
            router.close()
        assert [(s.accuracy, s.reason) for s in samples] == [(pytest.approx(0.77), None)] * 4  # "77" of 100
        wrong = RewardSettings(judges={"tiny": {**settings.judges["tiny"], "model": "no/such-model"}})
        with pytest.raises(NotReady, match="does not answer a chat request"):
            check_ready(records, wrong)
    finally:
        server.terminate()
        server.wait(timeout=30)
