"""Rule filters: each rule removes what it should (and only that), counts it, reads its config; the prompt-length
rule counts image tokens exactly as training does (checked against ``filter_long_prompts``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from orsta_trl.cli import main
from orsta_trl.data.filters import apply_rules, filter_rules_file, rules_config
from orsta_trl.data.records import load_records
from orsta_trl.errors import DataError


def cli(*argv) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code


def rec(rid, verifier, truth, text="Question?", image=None, **reward):
    content = [{"type": "text", "text": text}]
    if image:
        content.insert(0, {"type": "image"})
    return {
        "id": rid, "data_source": "src", "prompt": [{"role": "user", "content": content}],
        "images": [image] if image else [], "reward": {"verifier": verifier, "ground_truth": truth, **reward},
    }  # fmt: skip


def box(x1, y1, x2, y2, label="cat"):
    return {"bbox_2d": [x1, y1, x2, y2], "label": label}


@pytest.fixture
def dataset(tmp_path) -> Path:
    Image.new("RGB", (100, 100), "white").save(tmp_path / "img.png")
    rows = [
        rec("keep-math", "math", "\\frac{1}{2}"),
        rec("letter", "math", "B"),
        rec("truefalse", "ocr", "True"),
        rec("options", "math", "4", "What is 2+2?\nA. 3\nB. 4\nC. 5"),
        rec("inline", "math", "4", "What is 2+2? (A) 3 (B) 4"),
        rec("keep-e", "math", "e"),  # Euler's number, not option e
        rec("keep-points", "math", "5", "Point A: (1, 2) and point B: (4, 6). How far apart?"),
        rec("equation", "math", "x = 2"),
        rec("interval", "math", "(1, 2)"),
        rec("long", "math", "12345678901234567890123"),
        rec("keep-count", "count", 3, "How many?", "img.png"),
        rec("keep-det", "detection", [box(0, 0, 10, 10), box(20, 20, 30, 30)], "Find", "img.png"),
        rec("crowded", "detection", [box(i, i, i + 5, i + 5) for i in range(11)], "Find", "img.png"),
        rec("huge", "detection", [box(0, 0, 90, 90)], "Find", "img.png"),
    ]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "in.jsonl"


def test_default_rules_remove_and_count(dataset, tmp_path):
    out = tmp_path / "elsewhere" / "out.jsonl"
    report = filter_rules_file(dataset, out)
    kept = load_records(out)  # image paths were rewritten relative to the new folder
    assert [r.id for r in kept] == ["keep-math", "keep-e", "keep-points", "keep-count", "keep-det"]
    assert report.removed == {"choice": 4, "math_answer": 3, "detection": 2}
    assert report.not_applied and report.not_applied[0][0] == "max_prompt_length"


def test_config_changes_and_disables_rules(dataset, tmp_path):
    records = load_records(dataset)
    config = rules_config({"math_answer": {"max_length": 30, "forbidden": "="}, "choice": {"enabled": False},
                           "detection": {"max_per_category": 20, "max_area": 0.9}})  # fmt: skip
    kept, report = apply_rules(records, config)
    assert report.removed == {"math_answer": 1}  # only "x = 2"
    assert len(kept) == len(records) - 1
    with pytest.raises(DataError, match="math_answr.*math_answer"):
        rules_config({"math_answr": {}})
    with pytest.raises(DataError, match="max_lenght.*max_length"):
        rules_config({"math_answer": {"max_lenght": 3}})


def test_prompt_length_rule_counts_image_tokens_like_training(tiny_vl, synth_data, tmp_path):
    from orsta_trl.data.rows import filter_long_prompts, prompt_length
    from orsta_trl.models.loading import load_processor

    processor = load_processor(str(tiny_vl), min_pixels=3136, max_pixels=50176)
    records = load_records(synth_data)
    lengths = sorted(prompt_length(r, processor) for r in records)
    limit = lengths[len(lengths) // 2]
    expected, _ = filter_long_prompts(records, processor, limit)
    config = rules_config({"max_prompt_length": {"max_prompt_length": limit}, "choice": {"enabled": False},
                           "math_answer": {"enabled": False}, "detection": {"enabled": False}})  # fmt: skip
    kept, report = apply_rules(records, config, processing_class=processor)
    assert [r.key for r in kept] == [r.key for r in expected]
    assert 0 < report.removed["max_prompt_length"] < len(records)
    # the CLI takes processor, pixel bounds and the length from a recipe
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model_name_or_path: {tiny_vl}\ntrain_files: [{synth_data}]\nmin_pixels: 3136\n"
        f"max_pixels: 50176\nmax_prompt_length: {limit}\nuse_cpu: true\n"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text("choice: {enabled: false}\nmath_answer: {enabled: false}\ndetection: {enabled: false}\n")
    out = tmp_path / "out" / "f.jsonl"
    assert cli("filter", "rules", synth_data, out, "--config", rules, "--recipe", recipe) == 0
    assert [r.key for r in load_records(out)] == [r.key for r in expected]


def test_a_repeated_id_is_rejected_as_training_would(tmp_path):
    """The filters (and the difficulty filter, which keys its cache by record) read files as training does."""
    path = tmp_path / "dup.jsonl"
    path.write_text("\n".join(json.dumps(rec(rid, "count", 3)) for rid in ("a", "b", "a")) + "\n")
    with pytest.raises(DataError, match=r"dup.jsonl:3: source 'src', record 'a', field 'id': duplicate id"):
        filter_rules_file(path, tmp_path / "out.jsonl", rules_config(None))
    assert not (tmp_path / "out.jsonl").exists()


def test_math_answer_rule_drops_intervals_because_equivalent_forms_score_zero():
    """The rule's ``( )`` is not a false positive for an interval answer: the math verifier tells ``(-2, 2)`` from
    ``[-2, 2]``, but scores the equivalent ``-2 < x < 2`` 0, so the record would punish a correct answer."""
    import orsta_trl

    record = rec("interval", "math", "(-2, 2)", "Give the interval where x^2 < 4.")
    rewards = {
        text: orsta_trl.score([record], [{"id": "interval", "data_source": "src", "completion": text}])[
            0
        ].reward
        for text in (r"\boxed{(-2, 2)}", r"\boxed{[-2, 2]}", r"\boxed{-2 < x < 2}")
    }
    assert rewards == {r"\boxed{(-2, 2)}": 1.0, r"\boxed{[-2, 2]}": 0.0, r"\boxed{-2 < x < 2}": 0.0}
    records = load_records_from([record])
    _, report = apply_rules(records, rules_config(None))
    assert report.removed == {"math_answer": 1}
    assert (
        "answer contains '()' (equivalent forms are hard to verify by rule)" in report.examples["math_answer"]
    )


def load_records_from(rows):
    from orsta_trl.data.records import validate_record

    return [validate_record(row, f"test:{i + 1}", Path.cwd()) for i, row in enumerate(rows)]
