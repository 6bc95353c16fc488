"""The synthetic-data generator: determinism, the record contract, and ground truth checked against pixels."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from orsta_trl.data.synth import COLORS, TASKS, synth

N = 8
SIZE = (112, 224)
VERIFIER = {"detection": "detection", "grounding": "detection", "counting": "count", "ocr": "ocr"}
VERIFIER |= {"math": "math", "chart": "math"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, list[dict]]:
    path = synth(tmp_path_factory.mktemp("synth"), n=N, seed=0, image_size=SIZE)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return path, records


def by_task(records: list[dict], task: str) -> list[dict]:
    return [r for r in records if r["extra"]["task"] == task]


def pixels(path: Path, record: dict) -> np.ndarray:
    return np.asarray(Image.open(path.parent / record["images"][0]).convert("RGB")).astype(int)


def foreground(arr: np.ndarray, record: dict) -> np.ndarray:
    """Pixels that are not background; the background noise stays within about 15 levels of its base."""
    return np.abs(arr - np.array(record["extra"]["background"])).max(-1) > 40


def shape_of_blob(fill: float) -> str:
    """Classify a solid blob by how much of its bounding box it fills."""
    return "triangle" if fill < 0.65 else "circle" if fill < 0.92 else "square"


def test_deterministic_bytes(tmp_path: Path) -> None:
    a = synth(tmp_path / "a", n=3, seed=7)
    b = synth(tmp_path / "b", n=3, seed=7)
    assert a.name == "data.jsonl" and a.read_bytes() == b.read_bytes()
    pngs = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert len(pngs) == 3 * len(TASKS)
    assert pngs == sorted(p.name for p in (tmp_path / "b" / "images").iterdir())
    for name in pngs:
        assert (tmp_path / "a" / "images" / name).read_bytes() == (
            tmp_path / "b" / "images" / name
        ).read_bytes()
    other = synth(tmp_path / "c", n=3, seed=8)
    assert other.read_bytes() != a.read_bytes()


def test_record_depends_only_on_seed_task_index(tmp_path: Path, generated) -> None:
    path = synth(tmp_path, n=2, seed=0, tasks=["ocr", "chart"], image_size=SIZE)
    subset = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in subset] == ["ocr-s0-00000", "ocr-s0-00001", "chart-s0-00000", "chart-s0-00001"]
    full = {r["id"]: r for r in generated[1]}
    for record in subset:
        assert record == full[record["id"]]
        assert (tmp_path / record["images"][0]).read_bytes() == (
            generated[0].parent / record["images"][0]
        ).read_bytes()


def test_unknown_task_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did you mean 'counting'"):
        synth(tmp_path, n=1, tasks=["countin"])


def test_counts_ids_and_contract(generated) -> None:
    _, records = generated
    assert Counter(r["data_source"] for r in records) == {f"synth_{t}": N for t in TASKS}
    for source in {r["data_source"] for r in records}:
        ids = [r["id"] for r in records if r["data_source"] == source]
        assert len(set(ids)) == len(ids)
    for r in records:
        task = r["extra"]["task"]
        assert r["data_source"] == f"synth_{task}" and r["id"].startswith(f"{task}-")
        assert r["images"] == [f"images/{r['id']}.png"]
        reward = r["reward"]
        assert reward["verifier"] == VERIFIER[task]
        assert (reward["accuracy_weight"], reward["format_weight"]) == (1.0, 0.1)
        if task in ("math", "chart"):
            assert reward["params"] == {"format": "think_answer"} and isinstance(reward["ground_truth"], str)
            assert "\\boxed{}" in r["prompt"][0]["content"][1]["text"]
        elif task != "ocr":
            assert reward["params"] == {}
        text = r["prompt"][0]["content"][-1]["text"]
        assert "<answer></answer>" in text and "<think></think>" in text
    assert {r["reward"]["params"]["mode"] for r in by_task(records, "ocr")} == {"exact", "ned"}


def test_one_image_placeholder_per_image(generated) -> None:
    for r in generated[1]:
        assert len(r["prompt"]) == 1 and r["prompt"][0]["role"] == "user"
        content = r["prompt"][0]["content"]
        placeholders = [part for part in content if part == {"type": "image"}]
        assert len(placeholders) == len(r["images"]) == 1
        assert content[0] == {"type": "image"} and content[-1]["type"] == "text"


def test_images_exist_with_recorded_sizes(generated) -> None:
    path, records = generated
    sizes = set()
    for r in records:
        file = path.parent / r["images"][0]
        assert file.is_file()
        with Image.open(file) as img:
            assert img.format == "PNG" and img.mode == "RGB"
            assert img.size == (r["extra"]["width"], r["extra"]["height"])
            assert all(SIZE[0] <= side <= SIZE[1] and side % 28 == 0 for side in img.size)
            sizes.add(img.size)
    assert len(sizes) >= 10  # sizes vary from record to record


def test_boxes_inside_and_tight(generated) -> None:
    path, records = generated
    isolated = 0
    for r in by_task(records, "detection") + by_task(records, "grounding"):
        arr = pixels(path, r)
        fg = foreground(arr, r)
        h, w = fg.shape
        objects = r["extra"]["objects"]
        if r["extra"]["task"] == "detection":
            assert 2 <= len(objects) <= 5
            assert r["reward"]["ground_truth"] == [
                {"bbox_2d": o["bbox_2d"], "label": o["label"]} for o in objects
            ]
        else:
            (gt,) = r["reward"]["ground_truth"]
            color, shape = gt["label"].split()
            matches = [o for o in objects if (o["color"], o["label"]) == (color, shape)]
            assert len(matches) == 1 and matches[0]["bbox_2d"] == gt["bbox_2d"]
            assert f"the {color} {shape}" in r["prompt"][0]["content"][1]["text"]
        for o in objects:
            x1, y1, x2, y2 = o["bbox_2d"]
            assert all(isinstance(v, int) for v in o["bbox_2d"])
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and o["label"] in ("circle", "square", "triangle")
            inside = fg[y1:y2, x1:x2]
            # Tight from the inside: the shape reaches all four edges of its box.
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            colour = (arr[y1:y2, x1:x2] == COLORS[o["color"]]).all(-1)
            assert colour.any()
            others = [p["bbox_2d"] for p in objects if p is not o]
            if all(b[0] > x2 or b[2] < x1 or b[1] > y2 or b[3] < y1 for b in others):
                isolated += 1
                # Tight from the outside: nothing of the shape's colour or any foreground beyond the box.
                outside = fg.copy()
                outside[y1:y2, x1:x2] = False
                assert not outside[max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1].any()
                alone = (arr == COLORS[o["color"]]).all(-1)
                alone[y1:y2, x1:x2] = False
                for p in objects:
                    if p is not o and p["color"] == o["color"]:
                        px1, py1, px2, py2 = p["bbox_2d"]
                        alone[py1:py2, px1:px2] = False
                assert not alone.any()
                fill = colour.mean()
                assert shape_of_blob(fill) == o["label"]
    assert isolated >= N  # the outside check ran on many shapes


def test_counting_matches_blobs(generated) -> None:
    path, records = generated
    seen = set()
    for r in by_task(records, "counting"):
        arr = pixels(path, r)
        color, shape = r["extra"]["target"].split()
        k = r["reward"]["ground_truth"]
        assert isinstance(k, int) and 1 <= k <= 9 and r["extra"]["answer"] == str(k)
        assert f"How many {color} {shape}s are there?" in r["prompt"][0]["content"][1]["text"]
        labels, _ = ndimage.label((arr == COLORS[color]).all(-1), structure=np.ones((3, 3)))
        found = Counter(
            shape_of_blob((labels[blob] == i + 1).mean())
            for i, blob in enumerate(ndimage.find_objects(labels))
        )
        assert found[shape] == k
        seen.add(k)
        distractors = [o for o in r["extra"]["objects"] if (o["color"], o["label"]) != (color, shape)]
        assert distractors  # there is always something else to ignore
    assert len(seen) > 1


def test_text_was_rendered(generated) -> None:
    path, records = generated
    for r in by_task(records, "ocr") + by_task(records, "math"):
        fg = foreground(pixels(path, r), r)
        assert fg.sum() > 60
        ys, xs = np.nonzero(fg)
        assert xs.max() - xs.min() > 20  # a line of text, not a speck
    for r in by_task(records, "ocr"):
        assert r["reward"]["ground_truth"] == r["extra"]["answer"] and r["reward"]["ground_truth"].strip()


def test_math_ground_truth_is_python_evaluation(generated) -> None:
    _, records = generated
    for r in by_task(records, "math"):
        expr = r["extra"]["expression"]
        assert re.fullmatch(r"\d+( [-+*] \d+)+", expr)
        assert r["reward"]["ground_truth"] == str(eval(expr))  # noqa: S307 - our own arithmetic string


def test_chart_ground_truth_follows_the_bars(generated) -> None:
    path, records = generated
    for r in by_task(records, "chart"):
        bars, question = r["extra"]["bars"], r["extra"]["question"]
        values = list(bars.values())
        assert 3 <= len(bars) <= 6 and len(set(values)) == len(values)
        if "tallest" in question:
            expected = max(values)
        elif "shortest" in question:
            expected = min(values)
        elif "sum" in question:
            expected = sum(values)
        elif m := re.fullmatch(r"How much larger is bar (\w) than bar (\w)\?", question):
            expected = bars[m[1]] - bars[m[2]]
            assert expected > 0
        else:
            expected = bars[re.fullmatch(r"What is the value of bar (\w)\?", question)[1]]
        assert r["reward"]["ground_truth"] == str(expected)
        assert question in r["prompt"][0]["content"][1]["text"]
        assert foreground(pixels(path, r), r).mean() > 0.02  # bars were drawn


def test_reference_answers_score_one_with_the_default_resized_coordinates(generated) -> None:
    from orsta_trl.data.records import load_records
    from orsta_trl.rewards import RewardRouter, RewardSettings

    path, _ = generated
    records = [r for r in load_records(path) if r.reward.verifier.name == "detection"]
    router = RewardRouter(records, RewardSettings(min_pixels=3136, max_pixels=50176))
    texts = [f"<answer>{r.extra['answer']}</answer>" for r in records]
    scored = router.score(records, texts, progress=1.0)  # the strictest IoU threshold, 0.99
    assert records and all(s.verdict.accuracy == pytest.approx(1.0) for s in scored)


def test_files_of_different_seeds_are_checked_together_without_duplicate_ids(tmp_path: Path) -> None:
    """The demo's training and held-out files come from two seeds; ``check-data`` reads them as one set."""
    import subprocess
    import sys

    train = synth(tmp_path / "train", n=3, seed=0, tasks=["colour", "shape"], image_size=SIZE)
    held_out = synth(tmp_path / "eval", n=3, seed=1000, tasks=["colour", "shape"], image_size=SIZE)
    done = subprocess.run(
        [sys.executable, "-m", "orsta_trl.cli", "check-data", str(train), str(held_out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "duplicate" not in done.stdout + done.stderr
