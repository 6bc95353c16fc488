"""Per-source metrics and completion dumps on a fixed, hand-computed batch (no model)."""

from __future__ import annotations

import random

import pytest

from orsta_trl.monitor.dumps import CompletionDumper, read_dump, sample_indices
from orsta_trl.monitor.source_metrics import (
    DEFAULT_REFLECTION_WORDS,
    MetricRow,
    SourceMonitor,
    aggregate,
    compute_metrics,
    finalize,
    is_metric,
    parse_tag,
    split_tag,
)
from orsta_trl.monitor.writing import log_key, log_values, tag, tags
from orsta_trl.rewards.sample import Sample

_FIELDS = (
    "data_source",
    "id",
    "reward",
    "accuracy",
    "format",
    "parts",
    "reason",
    "length",
    "truncated",
    "text",
)


def hand_row(*values, **named) -> Sample:
    """A Sample from values in the order of the hand-computed table below."""
    *values, group = values if len(values) == 11 else (*values, named.pop("group", None))
    return Sample(**dict(zip(_FIELDS, values, strict=False)), **named, group=group)


# math: m1/m2 share prompt group g1 (rewards 1.0, 0.5: spread), m3/m4 share g2 (1.0, 1.0: zero spread).
M1 = hand_row(
    "math", "q1", 1.0, 1.0, 1.0, {}, None, 10, False, "Wait, let me recheck. The answer is 4.", "g1"
)
M2 = hand_row("math", "q1", 0.5, 0.0, 1.0, {}, "no_answer", 20, True, "I think it is 5", "g1")
M3 = hand_row(
    "math", "q2", 1.0, 1.0, 1.0, {}, None, 30, False, "Rechecked: yes, VERIFY done. wait wait", "g2"
)
M4 = hand_row("math", "q2", 1.0, 1.0, 0.0, {}, None, 40, False, "plain answer 7", "g2")
# det: one group with equal rewards; accuracy 0.5 is incorrect at the default threshold 1.0.
D1 = hand_row("det", "i1", 0.6, 0.5, 1.0, {"iou": 0.5, "f1": 0.8}, None, 8, False, "Yet another box", "h1")
D2 = hand_row(
    "det",
    "i1",
    0.6,
    0.5,
    1.0,
    {"iou": 0.7, "f1": 0.4},
    "unparsable_boxes",
    12,
    True,
    "re-check boxes re-check",
    "h1",
)
ROWS = [M1, M2, M3, M4, D1, D2]


def _counts(prefix: str, **nonzero: float) -> dict[str, float]:
    values = {f"{prefix}/reflection/count/{w}": 0.0 for w in DEFAULT_REFLECTION_WORDS}
    values.update({f"{prefix}/reflection/count/{w.replace('_', '-')}": v for w, v in nonzero.items()})
    return values


EXPECTED = {
    "train/source/math/reward": 3.5 / 4,
    "train/source/math/accuracy": 0.75,
    "train/source/math/format": 0.75,
    "train/source/math/reason/none": 0.75,
    "train/source/math/reason/no_answer": 0.25,
    "train/source/math/length/mean": 25.0,
    "train/source/math/length/correct": 80 / 3,
    "train/source/math/length/incorrect": 20.0,
    "train/source/math/truncated/ratio": 0.25,
    "train/source/math/truncated/correct": 0.0,
    "train/source/math/truncated/incorrect": 1.0,
    "train/source/math/reflection/ratio": 0.5,
    "train/source/math/reflection/ratio_correct": 2 / 3,
    "train/source/math/reflection/ratio_incorrect": 0.0,
    "train/source/math/reflection/accuracy_reflective": 1.0,
    "train/source/math/reflection/accuracy_nonreflective": 0.5,
    **_counts("train/source/math", recheck=2 / 4, wait=3 / 4, verify=1 / 4),
    "train/source/math/groups/zero_spread": 0.5,
    "train/source/det/reward": 0.6,
    "train/source/det/accuracy": 0.5,
    "train/source/det/format": 1.0,
    "train/source/det/part/iou": 0.6,
    "train/source/det/part/f1": 0.6,
    "train/source/det/reason/none": 0.5,
    "train/source/det/reason/unparsable_boxes": 0.5,
    "train/source/det/length/mean": 10.0,
    "train/source/det/length/incorrect": 10.0,
    "train/source/det/truncated/ratio": 0.5,
    "train/source/det/truncated/incorrect": 0.5,
    "train/source/det/reflection/ratio": 1.0,
    "train/source/det/reflection/ratio_incorrect": 1.0,
    "train/source/det/reflection/accuracy_reflective": 0.5,
    **_counts("train/source/det", yet=0.5, re_check=1.0),
    "train/source/det/groups/zero_spread": 1.0,
}


def _assert_values(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_every_metric_on_a_hand_computed_batch():
    monitor = SourceMonitor(["math", "det"])
    monitor.update(ROWS)
    _assert_values(tags(monitor.flush()), EXPECTED)


def test_absent_splits_and_unseen_sources_are_absent_not_zero():
    monitor = SourceMonitor(["math", "det", "ocr"])
    monitor.update(ROWS)
    values = tags(monitor.flush())
    assert not any(k.startswith("train/source/ocr/") for k in values)
    # nothing in det is correct at threshold 1.0, and nothing is non-reflective
    for metric in (
        "length/correct",
        "truncated/correct",
        "reflection/ratio_correct",
        "reflection/accuracy_nonreflective",
    ):
        assert f"train/source/det/{metric}" not in values
    assert all(v == v for v in values.values())  # no NaN
    sums = compute_metrics(ROWS)
    assert sums[("det", "length/correct")] == (0.0, 0.0)  # present in the sums, dropped by finalize


def test_correct_threshold_moves_the_split():
    values = tags(finalize(compute_metrics([D1, D2], correct_threshold=0.5)))
    assert values["train/source/det/length/correct"] == 10.0
    assert values["train/source/det/truncated/correct"] == 0.5
    assert values["train/source/det/reflection/ratio_correct"] == 1.0
    assert "train/source/det/length/incorrect" not in values


def test_reflection_matching_is_case_insensitive_substring_counting():
    row = hand_row(
        "s", "x", 0.0, 0.0, 0.0, text="WAIT. Wait... await: rechecked, Re-Think, check again!", group=1
    )
    values = tags(finalize(compute_metrics([row])))
    assert values["train/source/s/reflection/count/wait"] == 3.0  # "WAIT", "Wait", "await"
    assert values["train/source/s/reflection/count/recheck"] == 1.0
    assert values["train/source/s/reflection/count/re-think"] == 1.0
    assert values["train/source/s/reflection/count/check again"] == 1.0
    assert values["train/source/s/reflection/count/rethink"] == 0.0
    assert values["train/source/s/reflection/ratio"] == 1.0
    custom = tags(finalize(compute_metrics([row], reflection_words=("Await", "hmm"))))
    assert custom["train/source/s/reflection/count/await"] == 1.0
    assert custom["train/source/s/reflection/count/hmm"] == 0.0
    assert "train/source/s/reflection/count/wait" not in custom


def test_window_accumulates_across_updates_and_flush_resets():
    monitor = SourceMonitor(["math", "det"])
    monitor.update([M1, M2, D1, D2])  # the only no_answer is in this batch
    monitor.update([M3, M4])
    assert monitor.rows_seen == 6
    _assert_values(tags(monitor.peek()), EXPECTED)  # reason/no_answer stays 1/4 over the window, not 1/2
    _assert_values(tags(monitor.flush()), EXPECTED)
    assert tags(monitor.flush()) == {}
    monitor.update([D1])
    values = tags(monitor.flush())
    assert values["train/source/det/reward"] == pytest.approx(0.6)
    assert values["train/source/det/reason/none"] == 1.0
    assert not any(k.startswith("train/source/math/") for k in values)


def test_reason_shares_use_every_completion_of_the_window():
    first = [hand_row("s", "a", 0, 0, 0, reason="timeout", group=1)]
    second = [hand_row("s", "b", 0, 0, 0, group=2) for _ in range(3)]
    values = tags(finalize(aggregate([compute_metrics(first), compute_metrics(second)])))
    assert values["train/source/s/reason/timeout"] == 0.25
    assert values["train/source/s/reason/none"] == 0.75


def test_not_applicable_rows_are_left_out_of_the_means_as_trl_leaves_them_out():
    """A TRL reward function's None: not in reward/accuracy/format nor the group spread, still in reason shares."""
    rows = [
        hand_row("s", "a", 1.0, 1.0, 1.0, group=1),
        hand_row("s", "a", 0.0, 0.0, 0.0, reason="not_applicable", group=1),
        hand_row("s", "b", 0.5, 0.5, 1.0, group=2),
    ]
    values = tags(finalize(aggregate([compute_metrics(rows)])))
    assert values["train/source/s/reward"] == 0.75 and values["train/source/s/accuracy"] == 0.75
    assert values["train/source/s/reason/not_applicable"] == pytest.approx(1 / 3)
    assert values["train/source/s/groups/zero_spread"] == 1.0  # group 1 holds one applicable reward


def test_merging_per_rank_partials_equals_the_concatenation():
    rank0 = [M1, M2]  # math only, holds the only no_answer
    rank1 = [D1, D2]  # det only
    rank2 = [M3, M4]
    merged = aggregate([compute_metrics(rank0), compute_metrics(rank1), compute_metrics(rank2)])
    whole = compute_metrics(ROWS)
    assert sorted(merged) == sorted(whole)
    for key in whole:
        assert merged[key] == pytest.approx(whole[key]), key
    _assert_values(tags(finalize(merged)), EXPECTED)


def test_merge_property_on_random_batches():
    rng = random.Random(0)
    rows = []
    for g in range(40):
        source = rng.choice(["a", "b", "c", "d/x"])
        for _ in range(4):
            acc = rng.choice([0.0, 0.5, 1.0])
            rows.append(
                hand_row(
                    source,
                    str(g),
                    rng.choice([0.0, 1.0]),
                    acc,
                    rng.random(),
                    {"p": rng.random()} if source == "a" else {},
                    rng.choice([None, None, "no_answer", "timeout"]),
                    rng.randint(1, 99),
                    rng.random() < 0.2,
                    rng.choice(["wait", "ok", "verify yet"]),
                    ("batch", g),
                )
            )
    ranks: list[list[hand_row]] = [[], [], []]
    for g in range(40):  # whole groups per rank, ranks see different sources
        ranks[rng.randrange(3)].extend(rows[4 * g : 4 * g + 4])
    merged = tags(finalize(aggregate(compute_metrics(r) for r in ranks)))
    whole = tags(finalize(compute_metrics(rows)))
    assert sorted(merged) == sorted(whole)
    for key in whole:
        assert merged[key] == pytest.approx(whole[key]), key


def test_samples_gain_generation_facts_and_the_eval_split_has_its_own_tags():
    scored = [
        Sample("math", "q1", "math", 0.75, 1.0, 0.0, {"x": 1}, None, "a"),
        Sample("math", "q1", "math", 0.0, 0.0, 0.0, {"x": 0}, "no_answer", "b"),
    ]
    rows = [
        s.with_generation(n, t, g)
        for s, n, t, g in zip(scored, [5, 7], [False, True], [("s", 0)] * 2, strict=True)
    ]
    assert rows[0] == Sample("math", "q1", "math", 0.75, 1.0, 0.0, {"x": 1.0}, None, "a", 5, False, ("s", 0))
    assert rows[1].reason == "no_answer" and rows[1].truncated
    assert rows[1].verdict.as_dict() == {
        "accuracy": 0.0,
        "format": 0.0,
        "parts": {"x": 0},
        "reason": "no_answer",
    }
    with pytest.raises(ValueError):
        SourceMonitor([], split="valid")
    monitor = SourceMonitor([], split="eval")
    monitor.update(rows)
    values = tags(monitor.flush())
    assert values["eval/source/math/reward"] == 0.375
    assert all(parse_tag(tag)[:2] == ("eval", "math") for tag in values)
    assert not any(tag.startswith("train/") for tag in values)
    assert values["eval/source/math/part/x"] == 0.5
    assert values["eval/source/math/groups/zero_spread"] == 0.0
    assert monitor.sources == ["math"]


def test_split_tag_handles_sources_with_slashes():
    assert split_tag("math/reward") == ("math", "reward")
    assert split_tag("web/qa/length/mean") == ("web/qa", "length/mean")
    assert split_tag("x/reward/accuracy") == ("x/reward", "accuracy")
    assert split_tag("a/part/reward") == ("a", "part/reward")
    assert split_tag("a/reflection/count/check again") == ("a", "reflection/count/check again")
    assert is_metric("groups/zero_spread") and not is_metric("reward/accuracy") and not is_metric("part/")


# ---- completion dumps ---------------------------------------------------------------------------------------

PROMPTS = [f"prompt {i} ✓" for i in range(len(ROWS))]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_dump_round_trip(tmp_path, fmt):
    dumper = CompletionDumper(tmp_path, 1.0, fmt)
    path = dumper.write(12, ROWS, PROMPTS)
    assert path == tmp_path / "completions" / f"step_0000012.{fmt}"
    records = read_dump(path)
    assert [r["id"] for r in records] == [r.id for r in ROWS]
    assert records[4] == {
        "step": 12,
        "id": "i1",
        "data_source": "det",
        "prompt": "prompt 4 ✓",
        "completion": "Yet another box",
        "reward": 0.6,
        "accuracy": 0.5,
        "format": 1.0,
        "parts": {"iou": 0.5, "f1": 0.8},
        "reason": None,
        "detail": None,
        "length": 8,
        "truncated": False,
        "split": "train",  # the viewer's fields: none given to write() here
        "group": None,
        "advantage": None,
        "tools": None,
    }
    assert (
        records[0]["parts"] == {} and records[1]["reason"] == "no_answer" and records[1]["truncated"] is True
    )
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_dump_keeps_the_detail_behind_a_reason(tmp_path, fmt):
    import dataclasses

    unparsable = dataclasses.replace(M2, reason="judge_unparsable", detail="I would say fairly good")
    (record,) = read_dump(CompletionDumper(tmp_path, 1.0, fmt).write(1, [unparsable], ["p"]))
    assert (record["reason"], record["detail"]) == ("judge_unparsable", "I would say fairly good")


def test_jsonl_dump_reads_as_score_input(tmp_path):
    from orsta_trl.score import read_completions

    path = CompletionDumper(tmp_path, 1.0).write(3, ROWS, PROMPTS)
    rows = read_completions(path)
    assert [(r["data_source"], r["id"], r["completion"]) for r in rows] == [
        (r.data_source, r.id, r.text) for r in ROWS
    ]


def test_dump_fraction_is_deterministic_and_about_right(tmp_path):
    rows = [hand_row("s", str(i), 0, 0, 0, text=f"c{i}", group=i) for i in range(50)]
    prompts = [""] * 50
    assert CompletionDumper(tmp_path / "none", 0.0).write(1, rows, prompts) is None
    assert not (tmp_path / "none").exists()
    a = CompletionDumper(tmp_path / "a", 0.137, seed=7)
    b = CompletionDumper(tmp_path / "b", 0.137, seed=7)
    ids_a = [r["id"] for r in read_dump(a.write(5, rows, prompts))]
    assert ids_a == [r["id"] for r in read_dump(b.write(5, rows, prompts))]
    assert len(ids_a) in (6, 7) and ids_a == sorted(ids_a, key=int)
    assert sample_indices(50, 0.137, 7, 5) != sample_indices(50, 0.137, 7, 6)
    assert sample_indices(50, 0.137, 7, 5) != sample_indices(50, 0.137, 8, 5)
    kept = [len(sample_indices(50, 0.137, 0, step)) for step in range(400)]
    assert set(kept) == {6, 7}
    assert sum(kept) / 400 == pytest.approx(50 * 0.137, abs=0.15)
    assert sample_indices(3, 0.1, 0, 0) in ([], [0], [1], [2])
    assert any(sample_indices(3, 0.1, 0, s) for s in range(100))  # small fractions still dump sometimes
    assert sample_indices(4, 1.0, 0, 0) == [0, 1, 2, 3]


def test_dumper_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="fraction"):
        CompletionDumper(tmp_path, 1.5)
    with pytest.raises(ValueError, match="format"):
        CompletionDumper(tmp_path, 0.5, "csv")
    with pytest.raises(ValueError, match="prompts"):
        CompletionDumper(tmp_path, 1.0).write(0, ROWS, PROMPTS[:2])


def test_rows_stay_rows_until_written_and_log_keys_become_their_tags_in_transformers():
    """The trainer hands Trainer.log the keys of log_key; transformers' own rewrite_logs (what its TensorBoard
    callback applies) must turn each into exactly the row's tag, for both splits and sources with '/'."""
    from transformers.integrations.integration_utils import rewrite_logs

    monitor = SourceMonitor(["math", "det"])
    monitor.update(ROWS)
    rows = monitor.flush()
    assert rows and all(isinstance(r, MetricRow) and r.split == "train" for r in rows)
    extra = [MetricRow("eval", "web/qa", "length/mean", 3.0), MetricRow("eval", "eval", "reward", 0.5)]
    for row in [*rows, *extra]:
        assert rewrite_logs({log_key(row): row.value}) == {tag(row): row.value}, row
        assert parse_tag(tag(row)) == (row.split, row.source, row.metric), row
    assert rewrite_logs(log_values(rows)) == tags(rows)
    with pytest.raises(ValueError):
        finalize({("a", "reward"): (1.0, 1.0)}, split="valid")
