"""Every registered verifier: picklable, safe to call from threads, stable part keys, never raises on garbage."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import pytest

from orsta_trl.verifiers.base import Context
from orsta_trl.verifiers.registry import REGISTRY, get_verifier

PLAN = '{"steps": [{"id": "a", "agent": "x", "task": "t", "depends_on": []}]}'
CASES = {
    "math": ("4", {}, r"<think>2+2</think><answer>\boxed{4}</answer>"),
    "count": (3, {}, "<answer>3</answer>"),
    "ocr": ("stop", {"mode": "ned"}, "<answer>stap</answer>"),
    "detection": (
        [{"bbox_2d": [0, 0, 10, 10], "label": "a"}],
        {"pred_coords": "original"},
        '<answer>[{"bbox_2d": [0, 0, 10, 9], "label": "a"}]</answer>',
    ),
    "docparse": ("# A\n\nText.", {}, "# A\n\nText!"),
    "json": (None, {"required_keys": ["q"]}, '{"q": 1}'),
    "rewrite": ("cheap flights to paris", {}, '{"rewritten_query": "low-cost airfare to Paris"}'),
    "tool": ("4", {}, r"<think>t</think><answer>\boxed{4}</answer>"),
    "plan": (None, {}, PLAN),
}
CTX = Context(image_sizes=((100, 100),))


def test_every_registered_verifier_has_a_case():
    assert set(CASES) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(CASES))
def test_pickle_threads_and_garbage(name):
    gt, raw_params, text = CASES[name]
    verifier = get_verifier(name)
    params = verifier.parse_params(raw_params)
    gold = verifier.prepare(gt, params)
    expected = verifier.score(text, gold, params, CTX)
    assert set(expected.parts) == set(verifier.parts)
    clone, params2, gold2 = pickle.loads(pickle.dumps((verifier, params, gold)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: clone.score(text, gold2, params2, CTX), range(32)))
    assert results == [expected] * 32
    for garbage in ("", "\x00\ud800", "{" * 500, "<answer>" * 50, "]" * 1000 + "[{"):
        verdict = verifier.score(garbage, gold, params, CTX)
        assert set(verdict.parts) == set(verifier.parts)
        assert 0.0 <= verdict.accuracy <= 1.0 and 0.0 <= verdict.format <= 1.0
        assert all(0.0 <= v <= 1.0 for v in verdict.parts.values())
