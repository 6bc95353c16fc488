"""The detection verifier: IoU, the dynamic IoU schedule, box parsing, V-Triune's score, rescaling, COCO AP."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from qwen_vl_utils import smart_resize

from orsta_trl.verifiers.base import Context, FieldError, RewardSettings
from orsta_trl.verifiers.boxes import as_box, box_problem, parse_boxes
from orsta_trl.verifiers.detection import (
    PARTS,
    DetectionVerifier,
    detection_score,
    iou,
    iou_matrix,
    sample_ap,
)
from orsta_trl.verifiers.schedule import iou_threshold_at, validate_schedule

V = DetectionVerifier()
ORIGINAL = {"pred_coords": "original"}


def verdict(text, gt, params=None, **ctx):
    p = V.parse_params(params)
    settings = RewardSettings(
        **{k: ctx.pop(k) for k in ("min_pixels", "max_pixels", "iou_schedule") if k in ctx}
    )
    return V.score(text, V.prepare(gt, p), p, Context(**ctx, settings=settings))


def answer(boxes):
    return "<think>...</think><answer>" + json.dumps(boxes) + "</answer>"


# ---------------------------------------------------------------- IoU


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),  # touching edges
        ([0, 0, 2, 2], [1, 0, 3, 2], 1 / 3),
        ([0, 0, 4, 4], [1, 1, 3, 3], 0.25),
        ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),
        ([0.5, 0.5, 1.5, 2.5], [0.5, 0.5, 1.5, 1.5], 0.5),
    ],
)
def test_iou_known_boxes(a, b, expected):
    assert iou(a, b) == pytest.approx(expected, abs=1e-12)
    assert iou(b, a) == pytest.approx(expected, abs=1e-12)


def test_iou_matrix_shapes():
    m = iou_matrix([[0, 0, 2, 2], [1, 0, 3, 2]], [[0, 0, 2, 2], [1, 0, 3, 2], [9, 9, 10, 10]])
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 1 / 3, 0], [1 / 3, 1, 0]])
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert iou_matrix([[0, 0, 1, 1]], []).shape == (1, 0)


# ---------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (0.0, 0.85),
        (0.05, 0.85),
        (0.1, 0.85),
        (0.1000001, 0.95),
        (0.25, 0.95),
        (0.26, 0.99),
        (1.0, 0.99),
        (-1.0, 0.85),
        (2.0, 0.99),
        (math.nan, 0.85),
    ],
)
def test_default_schedule_boundaries(progress, expected):
    assert iou_threshold_at(progress) == expected


def test_custom_schedule():
    schedule = validate_schedule([[0, 0.5], [0.5, 0.7]])
    assert schedule == ((0.0, 0.5), (0.5, 0.7))
    assert [iou_threshold_at(p, schedule) for p in (0, 0.5, 0.51)] == [0.5, 0.5, 0.7]
    assert iou_threshold_at(0.9, ((0.0, 0.6),)) == 0.6


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ([], "non-empty"),
        ("0.5", "non-empty"),
        (None, "non-empty"),
        ([[0.0]], "pair 0"),
        ([[0.0, "0.9"]], "real numbers"),
        ([[0.0, True]], "real numbers"),
        ([[0.0, math.nan]], "real numbers"),
        ([[1.0, 0.9]], "[0, 1)"),
        ([[-0.1, 0.9]], "[0, 1)"),
        ([[0.0, 0.0]], "(0, 1]"),
        ([[0.0, 1.5]], "(0, 1]"),
        ([[0.0, 0.5], [0.0, 0.9]], "increase strictly"),
        ([[0.0, 0.5], [0.5, 0.9], [0.3, 0.95]], "pair 2"),
    ],
)
def test_validate_schedule_rejects(schedule, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_schedule(schedule)


# ---------------------------------------------------------------- detection_score

A, B = (0, 0, 10, 10, "a"), (20, 20, 30, 30, "b")
# 1-D layouts (all boxes span y 0..10) where the matchers disagree at t = 0.75:
# P1-G1 = 0.9, P1-G2 = 0.8, P2-G1 = 0.85, P2-G2 = 0.57 (below t).
G1, G2 = (0, 0, 10, 10, "x"), (0, 0, 7.2, 10, "x")
P1, P2 = (0, 0, 9, 10, "x"), (1.5, 0, 10, 10, "x")
BEST = iou(P1, G2) + iou(P2, G1)  # Hungarian's total
ONE = iou(P1, G1)


def acc(n_match, iou_sum, n_pred, n_gt, c=0.3, penalty=0.6):
    false_alarm = (n_pred - n_match) / n_pred if n_pred else 0.0
    completeness = 1 - ((n_gt - n_match) / n_gt + false_alarm) / 2
    return penalty ** abs(n_pred - n_gt) * ((1 - c) * iou_sum / n_gt + c * completeness)


@pytest.mark.parametrize(
    ("pred", "gt", "t", "kwargs", "expected"),
    [
        ([A, B], [A, B], 0.99, {}, 1.0),
        ([B, A], [A, B], 0.99, {}, 1.0),
        ([A], [A, B], 0.5, {}, 0.6 * (0.7 * 0.5 + 0.3 * 0.75)),  # one of two missed
        ([A, B, (50, 50, 60, 60, "a")], [A, B], 0.5, {}, 0.6 * (0.7 + 0.3 * (1 - 1 / 6))),  # a false alarm
        ([A, B, B], [A, B], 0.5, {"count_penalty": 1.0}, 0.7 + 0.3 * (1 - 1 / 6)),
        ([(0, 0, 10, 20, "a")], [A], 0.5, {}, 0.7 * 0.5 + 0.3),  # IoU exactly 0.5 meets t = 0.5
        ([(0, 0, 10, 20, "a")], [A], 0.6, {}, 0.0),  # below t: a miss and a false alarm
        ([], [A], 0.5, {}, 0.6 * 0.3 * 0.5),  # nothing predicted: completeness 1/2
        ([], [], 0.5, {}, 1.0),
        ([A], [], 0.5, {}, 0.0),
        ([(0, 0, 10, 10, "dog")], [(0, 0, 10, 10, "cat")], 0.5, {}, 0.0),
        ([(0, 0, 10, 10, "dog")], [(0, 0, 10, 10, "cat")], 0.5, {"match_labels": False}, 1.0),
        ([(0, 0, 10, 10, " Cat ")], [(0, 0, 10, 10, "cat")], 0.5, {}, 1.0),
        ([A], [A], 0.5, {"completeness_weight": 0.0}, 1.0),
        # the three matchers, gt order G1, G2: only Hungarian finds both matches
        ([P1, P2], [G1, G2], 0.75, {"matching": "hungarian"}, acc(2, BEST, 2, 2)),
        ([P1, P2], [G1, G2], 0.75, {"matching": "greedy_iou_first"}, acc(1, ONE, 2, 2)),
        ([P1, P2], [G1, G2], 0.75, {"matching": "greedy_label_first"}, acc(1, ONE, 2, 2)),
        # gt order G2, G1: label-first now takes P1 for G2, then P2 for G1
        ([P1, P2], [G2, G1], 0.75, {"matching": "greedy_label_first"}, acc(2, BEST, 2, 2)),
        ([P1, P2], [G2, G1], 0.75, {"matching": "greedy_iou_first"}, acc(1, ONE, 2, 2)),
        ([P1, P2], [G2, G1], 0.75, {"matching": "hungarian"}, acc(2, BEST, 2, 2)),
    ],
)
def test_detection_score(pred, gt, t, kwargs, expected):
    assert detection_score(pred, gt, t, **kwargs) == pytest.approx(expected, abs=1e-12)


def test_matcher_layout_is_what_the_cases_claim():
    assert iou(P1, G1) == pytest.approx(0.9) and iou(P1, G2) == pytest.approx(0.8)
    assert iou(P2, G1) == pytest.approx(0.85) and iou(P2, G2) < 0.75


# ---------------------------------------------------------------- parsing

BOX = '{"bbox_2d": [1, 2, 3, 4], "label": "a"}'


@pytest.mark.parametrize(
    ("text", "n_boxes", "n_invalid", "found", "empty"),
    [
        (f"<answer>[{BOX}]</answer>", 1, 0, True, False),
        (f"<answer>```json\n[{BOX}]\n```</answer>", 1, 0, True, False),
        (f"Here you go:\n```json\n[{BOX}, {BOX}]\n```", 2, 0, True, False),
        ("<answer>[{'bbox_2d': [1, 2, 3, 4], 'label': 'a'}]</answer>", 1, 0, True, False),
        (
            """I'd say [{'bbox_2d': [1, 2, 3, 4], 'label': "it's"}, {'bbox_2d': [1, 2, 3, 4], 'label': 'b'}]""",
            2,
            0,
            True,
            False,
        ),
        ("""<answer>{'bbox_2d': [1, 2, 3, 4], 'label': 'a'}</answer>""", 1, 0, True, False),
        ("""[{'bbox_2d': [1, 2, 3, 4], 'label': 'a'}, {'bbox_2d': [5, 6, 7""", 1, 1, True, False),
        ("""[{"bbox_2d": [1, 2, 3, 4], "label": "person's hat"}, {"bbox_2d": [5""", 1, 1, True, False),
        (f'[{BOX}, {{"bbox_2d": [5, 6', 1, 1, True, False),  # truncated tail
        (f'<answer>[{BOX}, {{"bbox_2d": [5, 6, 7, 8], "lab', 1, 1, True, False),  # open answer tag
        (f"[{BOX},]", 1, 0, True, False),  # trailing comma
        (f"[{BOX}", 1, 0, True, False),  # closing bracket cut off
        ("I cannot see any object.", 0, 0, False, False),
        ("", 0, 0, False, False),
        ("[[[[{{{{]]]]}}}}", 0, 0, False, False),
        ("[" * 5000, 0, 0, False, False),
        ("[" * 3000 + "]" * 3000, 0, 0, False, False),
        (f'<answer>{{"objects": [{BOX}]}}</answer>', 1, 0, True, False),  # list nested in junk
        (f"<answer>{BOX}</answer>", 1, 0, True, False),  # a lone box dict
        ('<answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', 1, 0, True, False),
        ("<answer>[]</answer>", 0, 0, True, True),
        ("<answer> [ ] </answer>", 0, 0, True, True),
        ('[{"bbox_2d": [1e400, 2, 3, 4]}]', 0, 1, True, False),  # inf
        ('[{"bbox_2d": [0, 0, 1e300, 1e300]}]', 0, 1, True, False),  # area overflows
        ('[{"bbox_2d": [0, 0, 1' + "0" * 400 + ", 5]}]", 0, 1, True, False),  # int too large for a float
        ('[{"bbox_2d": [10, 10, 5, 5]}, {"bbox_2d": [0, 5, 5, 5]}]', 0, 2, True, False),  # inverted, flat
        ('[{"bbox_2d": [-5, -5, 5, 5]}]', 1, 0, True, False),  # negative but valid
        ('[{"bbox_2d": [NaN, 1, 2, 3]}, {"bbox_2d": [1, 2, Infinity, 4]}]', 0, 2, True, False),
        ('[{"bbox_2d": ["1", "2", "3", "4"]}]', 0, 1, True, False),
        ('[{"bbox_2d": [true, 0, 1, 1]}]', 0, 1, True, False),
        ('[{"bbox_2d": [1, 2, 3]}, {"bbox_2d": [1, 2, 3, 4, 5]}, {"bbox_2d": 5}]', 0, 3, True, False),
        ('[{"label": "a"}, "box", 7, null]', 0, 4, True, False),
        (f'[{BOX}, {{"bbox_2d": [1, 2, "x", 4]}}]', 1, 1, True, False),
        ("[1, 2, 3, 4]", 0, 4, True, False),  # a list, but of no boxes
        (f"I count [1, 2] things: [{BOX}]", 1, 0, True, False),  # a box list wins over a plain one
        (f'<think>[{{"bbox_2d": [0, 0, 9, 9]}}]</think><answer>[{BOX}]</answer>', 1, 0, True, False),
        ('<answer>{"bbox_2d": [1, 2</answer>', 0, 0, False, False),
        ('<answer>{"bbox_2d": [1, 2, 3, 4]</answer>', 0, 4, True, False),  # falls back to the coordinate list
        (None, 0, 0, False, False),
        (b"[]", 0, 0, False, False),
    ],
)
def test_parse_boxes(text, n_boxes, n_invalid, found, empty):
    parsed = parse_boxes(text)
    assert (len(parsed.boxes), parsed.n_invalid, parsed.found, parsed.explicit_empty) == (
        n_boxes,
        n_invalid,
        found,
        empty,
    )


def test_parse_box_values_and_labels():
    parsed = parse_boxes(
        '[{"bbox_2d": [1, 2.5, 3, 4], "label": "cat"}, {"bbox_2d": [0, 0, 1, 1]},'
        ' {"bbox_2d": [0, 0, 2, 2], "label": 5}]'
    )
    assert parsed.boxes == [(1.0, 2.5, 3.0, 4.0, "cat"), (0.0, 0.0, 1.0, 1.0, ""), (0.0, 0.0, 2.0, 2.0, "")]
    assert (
        parse_boxes("""[{'bbox_2d': [1, 2, 3, 4], 'label': "person's hat"}]""").boxes[0][4] == "person's hat"
    )
    assert parse_boxes("""[{'bbox_2d': [1, 2, 3, 4], 'label': 'a "b"'}]""").boxes[0][4] == 'a "b"'


def test_box_problem_agrees_with_as_box():
    rng = random.Random(3)
    values = [0, 1, 2.5, -3, 10**400, 1e308, -1e308, 1e-170, math.nan, math.inf, True, "1", None, [1]]
    for _ in range(3000):
        coords = [rng.choice(values) for _ in range(rng.choice([4, 4, 4, 3]))]
        item = rng.choice(
            [{"bbox_2d": coords, "label": "a"}, {"bbox_2d": tuple(coords)}, {"box": coords}, coords]
        )
        assert (box_problem(item) is None) == (as_box(item) is not None), item


FULL = [{"bbox_2d": [10 * i, 5, 10 * i + 8, 40 + i], "label": f"obj {i}"} for i in range(4)]
FULL_TEXT = "<think>look</think><answer>```json\n" + json.dumps(FULL, indent=1) + "\n```</answer>"


def test_every_truncation_keeps_a_prefix_of_the_boxes():
    full = parse_boxes(FULL_TEXT).boxes
    assert len(full) == 4
    for cut in range(len(FULL_TEXT) + 1):
        got = parse_boxes(FULL_TEXT[:cut]).boxes
        assert got == full[: len(got)], cut
    assert parse_boxes(FULL_TEXT[: FULL_TEXT.index("},") + 10]).boxes == full[:1]


@pytest.mark.filterwarnings("error")
def test_never_raises_on_garbage():
    rng = random.Random(0)
    alphabet = list("[]{}\",:'0123456789.-eE aNbx_<>/\n`") + [
        "bbox_2d",
        "<answer>",
        "</answer>",
        "```",
        "null",
    ]
    gold_p = V.parse_params(ORIGINAL)
    gold = V.prepare([{"bbox_2d": [1, 2, 30, 40], "label": "a"}], gold_p)
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        parse_boxes(text)
        v = V.score(text, gold, gold_p, Context())
        assert set(v.parts) == set(PARTS) and 0 <= v.accuracy <= 1 and v.format in (0.0, 1.0)
    for _ in range(300):
        chars = list(FULL_TEXT)
        for _ in range(rng.randrange(1, 6)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        V.score("".join(chars)[: rng.randrange(len(chars))], gold, gold_p, Context())


# ---------------------------------------------------------------- the verifier


def test_verdicts_reasons_and_stable_keys():
    gt = [{"bbox_2d": [10, 10, 50, 50], "label": "cat"}, {"bbox_2d": [60, 60, 90, 90], "label": "dog"}]
    cases = [
        (answer(gt), None, 1.0, 1.0),
        (answer(gt + [{"bbox_2d": [1, 1, 0, 0], "label": "cat"}]), "invalid_boxes", 1.0, 1.0),
        ("no boxes here", "no_answer", 0.0, 0.0),
        ("<answer>[1, 2]</answer>", "unparsable_boxes", 0.0, 0.0),
        ("<answer>[]</answer>", None, 1.0, 0.6**2 * 0.3 * 0.5),
    ]
    for text, reason, fmt, accuracy in cases:
        v = verdict(text, gt, ORIGINAL)
        assert (v.reason, v.format) == (reason, fmt)
        assert v.accuracy == pytest.approx(accuracy)
        assert tuple(v.parts) == PARTS and all(0.0 <= x <= 1.0 for x in v.parts.values())
    assert V.parts == PARTS and V.name == "detection" and V.needs_image_size
    perfect = verdict(answer(gt), gt, ORIGINAL).parts
    assert all(perfect[k] == pytest.approx(1.0, abs=1e-12) for k in PARTS)  # COCO's eps: AP is 1 - 2e-16


def test_empty_ground_truth_and_precision_recall_conventions():
    v = verdict("<answer>[]</answer>", [], ORIGINAL)
    assert v.accuracy == 1.0 and all(v.parts[k] == 1.0 for k in PARTS)
    v = verdict(answer([{"bbox_2d": [0, 0, 5, 5], "label": "a"}]), [], ORIGINAL)
    assert v.accuracy == 0.0 and all(v.parts[k] == 0.0 for k in PARTS)
    gt = [{"bbox_2d": [0, 0, 10, 10], "label": "a"}, {"bbox_2d": [20, 0, 30, 10], "label": "a"}]
    pred = [{"bbox_2d": [0, 0, 10, 8], "label": "a"}, {"bbox_2d": [50, 50, 60, 60], "label": "a"}]
    parts = verdict(answer(pred), gt, ORIGINAL).parts  # IoU 0.8 with the first gt, nothing else
    assert (parts["precision@0.5"], parts["recall@0.5"], parts["precision@0.75"]) == (0.5, 0.5, 0.5)
    assert (parts["precision@0.95"], parts["recall@0.99"]) == (0.0, 0.0)


def test_thresholds_dynamic_fixed_average_and_override():
    gt = [{"bbox_2d": [0, 0, 100, 100], "label": "a"}]
    text = answer([{"bbox_2d": [0, 0, 100, 90], "label": "a"}])  # IoU 0.9
    hit = 0.7 * 0.9 + 0.3  # the accuracy at any threshold <= 0.9; 0 above
    average = hit * 9 / 11  # 9 of the 11 thresholds are <= 0.9
    cases = [
        (None, {"progress": 0.1}, hit),  # schedule: 0.85
        (None, {"progress": 0.2}, 0.0),  # schedule: 0.95
        (None, {"progress": 0.2, "iou_schedule": ((0.0, 0.5),)}, hit),
        ({"iou_threshold": 0.9}, {}, hit),
        ({"iou_threshold": 0.91}, {}, 0.0),
        ({"iou_threshold": "average"}, {}, average),
        (None, {"iou_override": "average"}, average),
        ({"iou_threshold": 0.99}, {"iou_override": 0.5}, hit),
        ({"iou_threshold": "average"}, {"iou_override": 0.95}, 0.0),
    ]
    for params, ctx, expected in cases:
        assert verdict(text, gt, {**ORIGINAL, **(params or {})}, **ctx).accuracy == pytest.approx(expected)
    with pytest.raises(ValueError, match="iou_override"):  # a bad context is the caller's bug, not the text's
        verdict(text, gt, ORIGINAL, iou_override=0)


@pytest.mark.parametrize(
    ("size", "min_pixels", "max_pixels"),
    [((1000, 700), 3136, 12845056), ((1920, 1080), 3136, 200704), ((50, 40), 100352, 12845056)],
)
def test_resized_coordinates_map_back_to_the_original(size, min_pixels, max_pixels):
    width, height = size
    resized_h, resized_w = smart_resize(
        height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels
    )
    assert (resized_w, resized_h) != (width, height)
    gt = [{"bbox_2d": [0.1 * width, 0.2 * height, 0.6 * width, 0.9 * height], "label": "a"}]
    x1, y1, x2, y2 = gt[0]["bbox_2d"]
    sx, sy = resized_w / width, resized_h / height
    resized = answer([{"bbox_2d": [x1 * sx, y1 * sy, x2 * sx, y2 * sy], "label": "a"}])
    ctx = {"image_sizes": (size,), "min_pixels": min_pixels, "max_pixels": max_pixels, "iou_override": 0.99}
    assert verdict(resized, gt, None, **ctx).accuracy == pytest.approx(1.0)
    assert verdict(resized, gt, ORIGINAL, **ctx).accuracy < 1.0  # the same numbers read as original pixels
    norm = answer([{"bbox_2d": [100, 200, 600, 900], "label": "a"}])
    assert verdict(norm, gt, {"pred_coords": "norm1000"}, **ctx).accuracy == pytest.approx(1.0)
    assert verdict(answer(gt), gt, ORIGINAL, **ctx).accuracy == 1.0


@pytest.mark.parametrize(
    ("sizes", "modes"),
    [
        ((), ("resized", "norm1000")),
        (((0, 10),), ("resized", "norm1000")),
        (((10, -1),), ("resized", "norm1000")),
        ((("a", "b"),), ("resized", "norm1000")),
        ((None,), ("resized", "norm1000")),
        (((10000, 10),), ("resized",)),
    ],  # aspect ratio > 200: smart_resize refuses it
)
def test_unusable_image_size(sizes, modes):
    gt = [{"bbox_2d": [1, 1, 5, 5], "label": "a"}]
    for mode in modes:
        v = verdict(answer(gt), gt, {"pred_coords": mode}, image_sizes=sizes)
        assert (v.reason, v.accuracy, v.format) == ("no_image_size", 0.0, 1.0) and tuple(v.parts) == PARTS
    assert verdict(answer(gt), gt, ORIGINAL, image_sizes=sizes).accuracy == 1.0


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    ("box", "size"),
    [([1.7e308, 0, 1.79e308, 1], (4000, 4000)), ([0, 0, 1e-160, 1e-160], (1, 1))],  # fine until rescaled
)
def test_boxes_broken_by_rescaling_are_invalid(box, size):
    gt = [{"bbox_2d": [0.001, 0.001, 0.005, 0.005], "label": "a"}]
    assert len(parse_boxes(answer([{"bbox_2d": box}])).boxes) == 1
    text = answer([{"bbox_2d": [1, 1, 5, 5], "label": "a"}, {"bbox_2d": box, "label": "a"}])
    v = verdict(text, gt, {"pred_coords": "norm1000"}, image_sizes=(size,))
    assert v.reason == "invalid_boxes"
    assert v.parts["recall@0.5"] == (1.0 if size == (1, 1) else 0.0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"pred_coords": "pixels"}, "reward.params.pred_coords"),
        ({"matching": "optimal"}, "reward.params.matching"),
        ({"match_labels": "yes"}, "reward.params.match_labels"),
        ({"iou_threshold": 0}, "reward.params.iou_threshold"),
        ({"iou_threshold": 1.5}, "reward.params.iou_threshold"),
        ({"iou_threshold": "avg"}, "reward.params.iou_threshold"),
        ({"iou_threshold": True}, "reward.params.iou_threshold"),
        ({"completeness_weight": -0.1}, "reward.params.completeness_weight"),
        ({"count_penalty": 2}, "reward.params.count_penalty"),
        ({"count_penalty": "0.5"}, "reward.params.count_penalty"),
        ({"iou_treshold": 0.5}, "reward.params.iou_treshold"),
    ],
)
def test_bad_params(raw, field):
    with pytest.raises(FieldError) as err:
        V.parse_params(raw)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("gt", "needle"),
    [
        ({"bbox_2d": [1, 2, 3, 4], "label": "a"}, "list"),
        ("[]", "list"),
        ([{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [1, 2, 3], "label": "b"}], "box 1"),
        ([{"bbox_2d": [3, 2, 1, 4], "label": "a"}], "box 0"),
        ([{"bbox_2d": [1, 2, 3, 4]}], "label"),
        ([{"bbox_2d": [1, 2, 3, 4], "label": None}], "label"),
        ([{"box": [1, 2, 3, 4], "label": "a"}], "bbox_2d"),
        ([[1, 2, 3, 4]], "box 0"),
        ([{"bbox_2d": [1, 2, "3", 4], "label": "a"}], "numbers"),
        ([{"bbox_2d": [1, 2, math.inf, 4], "label": "a"}], "finite"),
    ],
)
def test_bad_ground_truth(gt, needle):
    with pytest.raises(FieldError) as err:
        V.prepare(gt, V.parse_params(None))
    assert err.value.field == "reward.ground_truth" and needle in err.value.message


def test_empty_ground_truth_is_valid():
    assert len(V.prepare([], V.parse_params(None)).labels) == 0


# ---------------------------------------------------------------- per-sample AP == pycocotools


def coco_stats(pred, gt, match_labels):
    """COCOeval's (AP, AP50, AP75) for one image, every prediction scored 1.0."""
    cats: dict[str, int] = {}

    def cat(label):
        return cats.setdefault(label.strip().lower() if match_labels else "", len(cats) + 1)

    def bbox(b):
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    anns = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": cat(b[4]),
            "bbox": bbox(b),
            "area": bbox(b)[2] * bbox(b)[3],
            "iscrowd": 0,
        }
        for i, b in enumerate(gt)
    ]
    dets = [{"image_id": 1, "category_id": cat(b[4]), "bbox": bbox(b), "score": 1.0} for b in pred]
    cat(gt[0][4] if gt else "a")
    base = {
        "images": [{"id": 1, "width": 1000, "height": 1000}],
        "categories": [{"id": i, "name": str(i)} for i in cats.values()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**base, "annotations": anns}
        coco_gt.createIndex()
        if dets:
            coco_dt = coco_gt.loadRes(dets)
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {**base, "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return tuple(ev.stats[:3])


def random_case(rng: random.Random):
    labels = ["a", "b", "C"][: rng.randint(1, 3)]
    integer = rng.random() < 0.5

    def coord(v):
        return float(round(v)) if integer else v

    def box(x, y, w, h, label):
        least = 1.0 if integer else 1e-3
        return (coord(x), coord(y), coord(x) + max(coord(w), least), coord(y) + max(coord(h), least), label)

    def any_box():
        return box(
            rng.uniform(0, 300),
            rng.uniform(0, 300),
            rng.uniform(2, 80),
            rng.uniform(2, 80),
            rng.choice(labels),
        )

    gt = [any_box() for _ in range(rng.randint(0, 5))]
    pred = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.random()
        if gt and kind < 0.6:  # a jittered copy of a gt box
            x1, y1, x2, y2, lab = rng.choice(gt)
            j = rng.choice([0, 0.5, 2, 6])
            pred.append(
                box(
                    x1 + rng.uniform(-j, j),
                    y1 + rng.uniform(-j, j),
                    x2 - x1 + rng.uniform(-j, j),
                    y2 - y1 + rng.uniform(-j, j),
                    lab if rng.random() < 0.8 else rng.choice(labels),
                )
            )
        elif pred and kind < 0.75:  # a duplicate
            pred.append(rng.choice(pred))
        elif kind < 0.85:  # a tiny box
            pred.append(box(rng.uniform(0, 300), rng.uniform(0, 300), 0.5, 0.5, rng.choice(labels)))
        else:
            pred.append(any_box())
    return pred, gt


def special_cases():
    rng = random.Random(7)
    big = (0.0, 0.0, 2e5, 2e5, "a")  # area 4e10: outside COCO's 'all' range, so ignored
    near = (0.0, 0.0, 1.9e5, 2e5, "a")
    many = [(x, 0.0, x + 10.0, 10.0, "a") for x in rng.sample(range(0, 3000, 3), 120)]
    return [
        ([near, (0, 0, 10, 10, "a")], [big, (0, 0, 10, 10, "a")]),
        ([near], [big]),
        ([near, near], [big, (0, 0, 10, 10, "a")]),
        # the detection overlaps an ignored gt more (0.95) than a counted one (0.90): COCO takes the counted one
        ([(0, 0, 1.05e5, 1e5, "a")], [(0, 0, 1.1e5, 1e5, "a"), (0, 0, 0.95e5, 1e5, "a")]),
        ([(0, 0, 1.05e5, 1e5, "a")], [(0, 0, 0.95e5, 1e5, "a"), (0, 0, 1.1e5, 1e5, "a")]),
        ([(0, 0, 10, 10, "a")] * 3, [(0, 0, 10, 10, "a")] * 2),
        (many, [(x, 0.0, x + 10.0, 10.0, "a") for x in range(0, 300, 30)]),  # > maxDets
        ([(0, 0, 10, 10, "a"), (0, 0, 10, 10, "b")], [(0, 0, 10, 10, "b")]),
        ([(0, 0, 10, 10, "z")], [(0, 0, 10, 10, "a")]),
        # the first detection ties (IoU 9/11) with both gts: COCO gives it the last, leaving the first for the second
        ([(1, 0, 11, 10, "a"), (0, 0, 10, 10, "a")], [(0, 0, 10, 10, "a"), (2, 0, 12, 10, "a")]),
        ([], [(0, 0, 10, 10, "a")]),
    ]


def test_sample_ap_equals_pycocotools():
    rng = random.Random(1234)
    cases = [random_case(rng) for _ in range(60)] + special_cases()
    for _ in range(25):  # scaled up so that box areas straddle COCO's 1e10 'all' range (ignored beyond it)
        pred, gt = random_case(rng)
        s = rng.choice([1250.0, 1500.0, 1800.0])
        cases.append(
            tuple(
                [(x1 * s, y1 * s, x2 * s, y2 * s, lab) for x1, y1, x2, y2, lab in boxes]
                for boxes in (pred, gt)
            )
        )
    checked = 0
    for pred, gt in cases:
        for match_labels in (True, False):
            ours = sample_ap(pred, gt, match_labels)
            theirs = coco_stats(pred, gt, match_labels)
            if any(theirs[k] == -1 for k in range(3)):  # no countable gt: our documented convention
                assert all(x == (1.0 if not pred else 0.0) for x in ours), (pred, gt)
                continue
            np.testing.assert_allclose(
                ours, theirs, rtol=0, atol=1e-9, err_msg=repr((pred, gt, match_labels))
            )
            checked += 1
    assert checked >= 100


def test_verifier_ap_parts_match_sample_ap():
    gt = [{"bbox_2d": [0, 0, 10, 10], "label": "a"}, {"bbox_2d": [20, 0, 30, 10], "label": "b"}]
    pred = [
        {"bbox_2d": [0, 0, 10, 9], "label": "a"},
        {"bbox_2d": [0, 0, 10, 10], "label": "a"},
        {"bbox_2d": [21, 0, 30, 10], "label": "b"},
    ]
    parts = verdict(answer(pred), gt, ORIGINAL).parts
    boxes = lambda xs: [(*x["bbox_2d"], x["label"]) for x in xs]  # noqa: E731
    assert (parts["ap"], parts["ap50"], parts["ap75"]) == pytest.approx(sample_ap(boxes(pred), boxes(gt)))
    assert (parts["ap"], parts["ap50"], parts["ap75"]) == pytest.approx(
        coco_stats(boxes(pred), boxes(gt), True)
    )


def reference_matches(pred, gt, t, matching, match_labels):
    """(n_match, IoU sum) straight from the definitions; Hungarian by exhaustive search."""

    def w(i, j):
        same = not match_labels or pred[i][4].strip().lower() == gt[j][4].strip().lower()
        value = iou(pred[i], gt[j])
        return value if same and value >= t else 0.0

    if matching == "hungarian":
        best = (0, 0.0)

        def search(i, used, n, total):
            nonlocal best
            if i == len(pred):
                best = max(best, (n, total), key=lambda b: b[1])
                return
            search(i + 1, used, n, total)
            for j in range(len(gt)):
                if j not in used and w(i, j) > 0:
                    search(i + 1, used | {j}, n + 1, total + w(i, j))

        search(0, frozenset(), 0, 0.0)
        return best
    pairs = []
    if matching == "greedy_label_first":
        free = set(range(len(pred)))
        for j in range(len(gt)):
            options = sorted((-w(i, j), i) for i in free if w(i, j) > 0)
            if options:
                pairs.append((options[0][1], j))
                free.discard(options[0][1])
    else:
        ranked = sorted((-w(i, j), i, j) for i in range(len(pred)) for j in range(len(gt)) if w(i, j) > 0)
        used_p, used_g = set(), set()
        for _, i, j in ranked:
            if i not in used_p and j not in used_g:
                used_p.add(i)
                used_g.add(j)
                pairs.append((i, j))
    return len(pairs), sum(w(i, j) for i, j in pairs)


def test_matchers_against_their_definitions():
    rng = random.Random(5)
    for _ in range(100):
        pred, gt = random_case(rng)
        pred, gt = pred[:5], gt[:5]
        for t in (0.3, 0.5, 0.8):
            for matching in ("hungarian", "greedy_label_first", "greedy_iou_first"):
                for match_labels in (True, False):
                    n, s = reference_matches(pred, gt, t, matching, match_labels)
                    expected = acc(n, s, len(pred), len(gt)) if gt else float(not pred)
                    got = detection_score(pred, gt, t, matching, match_labels)
                    assert got == pytest.approx(expected, abs=1e-12), (pred, gt, t, matching, match_labels)


# ---------------------------------------------------------------- sparse matching == the dense reference


def crowded_case(rng: random.Random, n: int, side: float = 400.0):
    """``n`` ground-truth boxes packed into a ``side``-wide image, and jittered, duplicated or stray guesses."""
    labels = ["a", "b", "c"][: rng.randint(1, 3)]
    gt = []
    for _ in range(n):
        x, y, w, h = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(5, 60), rng.uniform(5, 60)
        gt.append((x, y, x + w, y + h, rng.choice(labels)))
    pred = []
    for x1, y1, x2, y2, lab in gt:
        if rng.random() < 0.85:
            j = rng.choice([0.5, 3, 8])
            pred.append(
                (
                    x1 + rng.uniform(-j, j),
                    y1 + rng.uniform(-j, j),
                    x2 + rng.uniform(0, j),
                    y2 + rng.uniform(0, j),
                    lab,
                )
            )
        if rng.random() < 0.15:
            pred.append(pred[-1] if pred else gt[0])
    rng.shuffle(pred)
    return pred, gt


def test_sparse_matching_equals_the_dense_reference(monkeypatch):
    """Matches, IoU sums and AP agree with the pre-issue-12 dense code, through both candidate searches."""
    from dense_boxes_reference import _match_counts as dense_counts
    from dense_boxes_reference import allowed_ious
    from dense_boxes_reference import coco_ap as dense_ap

    from orsta_trl.verifiers import box_match
    from orsta_trl.verifiers.boxes import areas, coords_array, label_categories

    rng = random.Random(99)
    cases = [crowded_case(rng, rng.choice([20, 60, 150])) for _ in range(8)]
    cases += [random_case(rng) for _ in range(40)] + special_cases()
    thresholds = (0.3, 0.5, 0.75, 0.9, 0.99)
    compared = 0
    for dense_max in (0, 10**9):  # the k-d tree everywhere, then the dense matrix everywhere
        monkeypatch.setattr(box_match, "DENSE_MAX", dense_max)
        for pred, gt in cases:
            for match_labels in (True, False):
                p, g = coords_array(pred), coords_array(gt)
                p_cat, g_cat = label_categories([b[4] for b in pred], [b[4] for b in gt], match_labels)
                allowed = allowed_ious(iou_matrix(p, g), p_cat, g_cat)
                pairs = box_match.overlap_pairs(p, g, p_cat, g_cat, min(thresholds))
                dense = np.zeros(allowed.shape)
                dense[pairs.rows, pairs.cols] = pairs.ious
                np.testing.assert_array_equal(dense, np.where(allowed >= min(thresholds), allowed, 0.0))
                for matching in ("hungarian", "greedy_label_first", "greedy_iou_first"):
                    n_new, s_new = box_match.match_counts(pairs, thresholds, matching)
                    n_old, s_old = dense_counts(allowed, thresholds, matching)
                    np.testing.assert_array_equal(n_new, n_old, err_msg=repr((pred, gt, matching)))
                    np.testing.assert_allclose(s_new, s_old, rtol=1e-12, atol=1e-12)
                ours = box_match.coco_ap(pairs, p_cat, g_cat, areas(p), areas(g))
                theirs = dense_ap(allowed, p_cat, g_cat, areas(p), areas(g))
                assert ours == theirs, (pred, gt, match_labels)
                compared += 1
    assert compared >= 200


def test_crowded_ap_through_the_tree_equals_pycocotools(monkeypatch):
    from orsta_trl.verifiers import box_match

    monkeypatch.setattr(box_match, "DENSE_MAX", 0)
    rng = random.Random(3)
    cases = [crowded_case(rng, n) for n in (40, 120, 250)] + [random_case(rng) for _ in range(20)]
    for pred, gt in cases:
        for match_labels in (True, False):
            theirs = coco_stats(pred, gt, match_labels)
            if min(theirs) == -1:
                continue
            np.testing.assert_allclose(sample_ap(pred, gt, match_labels), theirs, rtol=0, atol=1e-9)


def test_verdicts_of_a_thousand_boxes_equal_the_dense_path(monkeypatch):
    """The verifier's whole verdict on a crowded 1,000-box scene does not depend on the candidate search."""
    from orsta_trl.verifiers import box_match

    pred, gt = crowded_case(random.Random(4), 1000, side=900.0)
    gt_items = [{"bbox_2d": list(b[:4]), "label": b[4]} for b in gt]
    text = answer([{"bbox_2d": list(b[:4]), "label": b[4]} for b in pred])
    verdicts = []
    for dense_max in (0, 10**9):
        monkeypatch.setattr(box_match, "DENSE_MAX", dense_max)
        for matching in ("hungarian", "greedy_iou_first"):
            params = {**ORIGINAL, "matching": matching, "iou_threshold": "average"}
            verdicts.append(verdict(text, gt_items, params))
    for tree, dense in (
        (verdicts[0], verdicts[2]),
        (verdicts[1], verdicts[3]),
    ):  # equal up to summation order
        assert (tree.reason, tree.format) == (dense.reason, dense.format)
        assert tree.accuracy == pytest.approx(dense.accuracy, rel=1e-12)
        assert tree.parts == pytest.approx(dense.parts, rel=1e-12)
    # COCO counts 100 detections per category: AP is low here, recall (every box) is not
    assert 0 < verdicts[0].parts["ap"] < 0.5 < verdicts[0].parts["recall@0.5"]
