"""Prompt pool: our two pools, chosen by the record's format, seeded, limited to the listed verifiers,
switchable off and replaceable from the recipe."""

from __future__ import annotations

import re

import pytest

from orsta_trl.data.prompt_pool import FREE_FORM, TAGGED, apply_prompt_pool, pooled
from orsta_trl.data.records import load_records
from orsta_trl.errors import RecipeError
from orsta_trl.recipe import OrstaConfig, load_recipe


def records():
    def rec(i, verifier, truth, fmt):
        return {"id": f"r{i}", "data_source": "s", "reward": {"verifier": verifier, "ground_truth": truth,
                "format_weight": fmt}, "prompt": [{"role": "user", "content": f"Question {i}?"}]}  # fmt: skip

    rows = [rec(i, "math", "1", 0.0) for i in range(20)] + [
        rec(20, "count", 2, 0.5),
        rec(21, "ocr", "x", 0.5),
    ]
    rows.append(rec(22, "rewrite", "some text", 0.0))
    return load_records(rows)


def text(record) -> str:
    return record.prompt[-1]["content"][-1]["text"]


def test_pools_are_ours_and_well_formed():
    for first, second in (FREE_FORM, TAGGED):
        assert len(first) >= 10 and len(second) >= 10
        assert len(set(first)) == len(first) and len(set(second)) == len(second)
        for sentence in (*first, *second):  # V-Triune's pool fuses two sentences: ours must not
            assert not re.search(r"[.!?]\s*[A-Z]", sentence[:-1]), sentence
            assert sentence.endswith(".") and "\\boxed{" in sentence or sentence in first
    assert all("<think>" in s and "<answer>" in s for s in TAGGED[0])
    assert not any("<think>" in s for s in FREE_FORM[0] + FREE_FORM[1])


def test_seeded_by_format_and_only_listed_verifiers():
    base = records()
    a = apply_prompt_pool(base, seed=1)
    assert [text(r) for r in a] == [text(r) for r in apply_prompt_pool(base, seed=1)]
    assert [text(r) for r in a] != [text(r) for r in apply_prompt_pool(base, seed=2)]
    for before, after in zip(base, a, strict=True):
        head, _, tail = text(after).partition("\n\n")
        if before.reward.verifier.name == "rewrite":
            assert after is before
            continue
        assert head == text(before)
        pool = TAGGED if before.reward.format_weight > 0 else FREE_FORM
        assert any(tail.startswith(s) for s in pool[0]) and any(tail.endswith(s) for s in pool[1])
    assert len({text(r).partition("\n\n")[2] for r in a[:20]}) > 5  # varied across records
    assert text(base[0]) == "Question 0?"  # originals untouched


def test_recipe_switches_and_replaces_pools(tmp_path):
    base = records()
    assert [text(r) for r in pooled(base, OrstaConfig())] == [text(r) for r in base]  # off by default
    orsta = OrstaConfig(
        prompt_pool=True, prompt_pool_verifiers=["count"], prompt_pool_tagged=[["Think."], ["Box."]]
    )
    out = pooled(base, orsta)
    assert text(out[20]) == "Question 20?\n\nThink. Box." and text(out[0]) == "Question 0?"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("prompt_pool: true\nprompt_pool_free_form: [[only one list]]\n")
    with pytest.raises(RecipeError, match="prompt_pool_free_form"):
        load_recipe(recipe)
