"""Deterministic synthetic vision-language data, drawn with PIL, in the orsta-trl record format.

``synth(out_dir, n=32)`` writes ``out_dir/data.jsonl`` and PNGs under ``out_dir/images/``: ``n`` records for
each of :data:`TASKS` (detection, grounding, counting, ocr, math, chart), every one checkable by a verifier
(``detection``, ``count``, ``ocr`` or ``math``). Each record draws from its own ``random.Random`` seeded by
(seed, task, index), so the same arguments give byte-identical files, and a record does not depend on ``n`` or
on which other tasks were asked for.

Boxes are integer pixels of the original image in pixel-edge coordinates: ``[x1, y1, x2, y2]`` with
``x2 = last column + 1`` (like COCO's ``x + w``), tight around the shape's visible pixels. Image sides are
multiples of 28, so Qwen2.5-VL's resized input equals the original whenever the image lies within the
processor's pixel bounds (the demo's do): the reference answer in ``extra["answer"]`` then scores 1 under the
detection verifier's default ``pred_coords: "resized"``.

    python -m orsta_trl.data.synth OUT_DIR [--n 32] [--seed 0] [--tasks ocr math]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from orsta_trl.data import synth_easy
from orsta_trl.data.drawing import COLORS, SHAPES, canvas, draw_shape
from orsta_trl.errors import DataError
from orsta_trl.keys import unknown_key_message

TASKS: tuple[str, ...] = ("detection", "grounding", "counting", "ocr", "math", "chart")
WORDS: tuple[str, ...] = (
    "apple", "river", "garden", "yellow", "planet", "window", "silver", "basket", "orange", "forest",
    "candle", "rocket", "pencil", "bridge", "winter", "market", "castle", "dragon", "mirror", "tiger",
    "cloud", "lemon", "piano", "ocean", "train", "music", "paper", "stone", "smile", "light",
    "Hello", "Coffee", "Museum", "Station", "Library", "OPEN", "EXIT", "STOP", "SALE", "Vision",
)  # fmt: skip
THINK = "Think step by step inside <think></think> first, then"
BOXED = "Think step by step inside <think></think> first. Put the final answer in \\boxed{} inside <answer></answer>."
INK = (25, 25, 35)


def _place(rng, w, h, boxes, lo, hi, max_frac: float, margin: int) -> tuple[int, int, int, int] | None:
    """A random square box of side in [lo, hi], 2 px from the border, that overlaps no box in ``boxes`` by
    more than ``max_frac`` of the smaller one (``max_frac=0``: not at all, and at least ``margin`` px apart)."""
    for _ in range(300):
        s = rng.randint(lo, hi)
        x, y = rng.randint(2, w - s - 2), rng.randint(2, h - s - 2)
        box = (x, y, x + s, y + s)
        for b in boxes:
            iw = min(box[2], b[2]) + margin - max(box[0], b[0])
            ih = min(box[3], b[3]) + margin - max(box[1], b[1])
            if iw > 0 and ih > 0 and iw * ih > max_frac * min(s, b[2] - b[0]) ** 2:
                break
        else:
            return box
    return None


def _scene(rng, image_size, specs: list[tuple[str, str]], max_frac: float, margin: int):
    """Draw (shape, color) specs; returns (image, background, objects) with tight visible-pixel boxes."""
    img, bg = canvas(rng, image_size)
    w, h = img.size
    lo, hi = max(10, min(w, h) // 10), max(14, min(w, h) // 5)
    boxes, placed = [], []
    for spec in specs:
        for shrink in range(4):  # a crowded scene retries with smaller shapes, then gives the shape up
            box = _place(rng, w, h, boxes, max(8, lo - 2 * shrink), max(8, hi - 3 * shrink), max_frac, margin)
            if box is not None:
                boxes.append(box)
                placed.append(spec)
                break
    index = Image.new("L", (w, h), 0)
    draw, idraw = ImageDraw.Draw(img), ImageDraw.Draw(index)
    for i, ((shape, color), box) in enumerate(zip(placed, boxes, strict=True)):
        draw_shape(draw, shape, box, COLORS[color])
        draw_shape(idraw, shape, box, i + 1)
    objects = []
    for i, (shape, color) in enumerate(placed):
        bbox = index.point(lambda v, i=i: 255 if v == i + 1 else 0).getbbox()
        if bbox is not None:  # a fully hidden shape is dropped (cannot happen with small overlaps)
            objects.append({"bbox_2d": list(bbox), "label": shape, "color": color})
    return img, bg, objects


def _detection(rng, image_size, index):
    specs = [(rng.choice(SHAPES), rng.choice(list(COLORS))) for _ in range(rng.randint(2, 5))]
    img, bg, objects = _scene(rng, image_size, specs, max_frac=0.15, margin=0)
    gt = [{"bbox_2d": o["bbox_2d"], "label": o["label"]} for o in objects]
    text = (
        f"Locate every shape (circle, square or triangle) in the image. {THINK} give the final answer inside "
        '<answer></answer> as a JSON list with one entry per shape, like [{"bbox_2d": [x1, y1, x2, y2], '
        '"label": "circle"}].'
    )
    return img, text, "detection", gt, {}, {"background": bg, "objects": objects, "answer": json.dumps(gt)}


def _grounding(rng, image_size, index):
    combos = [(s, c) for s in SHAPES for c in COLORS]
    target = rng.choice(combos)
    others = [rng.choice([c for c in combos if c != target]) for _ in range(rng.randint(2, 5))]
    # The target goes first so that it always finds room; later shapes may overlap it a little.
    img, bg, objects = _scene(rng, image_size, [target, *others], max_frac=0.15, margin=0)
    obj = next(o for o in objects if (o["label"], o["color"]) == target)
    label = f"{target[1]} {target[0]}"
    gt = [{"bbox_2d": obj["bbox_2d"], "label": label}]
    text = (
        f"Locate the {label} in the image. {THINK} give its bounding box inside <answer></answer> as JSON: "
        f'[{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}].'
    )
    extra = {"background": bg, "objects": objects, "target": label, "answer": json.dumps(gt)}
    return img, text, "detection", gt, {}, extra


def _counting(rng, image_size, index):
    combos = [(s, c) for s in SHAPES for c in COLORS]
    target = rng.choice(combos)
    k = rng.randint(1, 9)
    others = [rng.choice([c for c in combos if c != target]) for _ in range(rng.randint(2, 6))]
    # Targets first so that they always fit; nothing touches (2-px gaps), so each shape is one blob.
    img, bg, objects = _scene(rng, image_size, [target] * k + others, max_frac=0.0, margin=2)
    count = sum((o["label"], o["color"]) == target for o in objects)
    text = f"How many {target[1]} {target[0]}s are there? {THINK} give the number inside <answer></answer>."
    extra = {"background": bg, "objects": objects, "target": f"{target[1]} {target[0]}", "answer": str(count)}
    return img, text, "count", count, {}, extra


def _fit_text(text: str, size: int, max_w: int, max_h: int):
    while True:
        font = ImageFont.load_default(size=size)
        bbox = tuple(int(v) for v in font.getbbox(text))
        if size <= 10 or (bbox[2] - bbox[0] <= max_w and bbox[3] - bbox[1] <= max_h):
            return font, bbox  # type: ignore[return-value]
        size -= 2


def _ocr(rng, image_size, index):
    word = str(rng.randint(10, 99999)) if rng.random() < 0.3 else rng.choice(WORDS)
    img, bg = canvas(rng, image_size, wide=True)
    w, h = img.size
    font, (x0, t, x1, b) = _fit_text(word, rng.randint(26, 40), w - 16, h - 16)
    x, y = rng.randint(8, max(8, w - 8 - (x1 - x0))), rng.randint(8, max(8, h - 8 - (b - t)))
    ink = rng.choice([INK, (20, 40, 120), (120, 20, 20)])
    ImageDraw.Draw(img).text((x - x0, y - t), word, font=font, fill=ink)
    text = f"What text is written in the image? {THINK} give exactly that text inside <answer></answer>."
    mode = "exact" if index % 2 == 0 else "ned"
    return img, text, "ocr", word, {"mode": mode}, {"background": bg, "answer": word}


def _evaluate(tokens: list[Any]) -> int:
    """Evaluate [a, op, b, op, c ...] with ``*`` binding tighter than ``+``/``-``."""
    terms, signs = [tokens[0]], [1]
    for op, value in zip(tokens[1::2], tokens[2::2], strict=True):
        if op == "*":
            terms[-1] *= value
        else:
            terms.append(value)
            signs.append(1 if op == "+" else -1)
    return sum(sign * term for sign, term in zip(signs, terms, strict=True))


def _math(rng, image_size, index):
    tokens: list[Any] = [rng.randint(2, 60)]
    for _ in range(rng.randint(1, 2)):
        op = rng.choice("+-*")
        tokens += [op, rng.randint(2, 12) if op == "*" else rng.randint(2, 60)]
    expr = " ".join(map(str, tokens))
    shown = expr.replace("*", "×") + " = ?"
    img, bg = canvas(rng, image_size, wide=True)
    w, h = img.size
    # The bundled font has no "×" glyph: draw numbers and + - = ? as text, and × as two crossed strokes.
    parts, size = shown.split(" "), rng.randint(20, 30)
    while True:
        font = ImageFont.load_default(size=size)
        space, (_, t, _, b) = font.getlength(" "), font.getbbox("0123456789+-=?")
        widths = [font.getlength("+" if p == "×" else p) for p in parts]
        total = sum(widths) + space * (len(parts) - 1)
        if size <= 12 or total <= w - 12:
            break
        size -= 2
    x = rng.randint(6, max(6, int(w - 6 - total)))
    y = rng.randint(8, max(8, h - 8 - (b - t))) - t
    draw = ImageDraw.Draw(img)
    _, pt, _, pb = font.getbbox("+")
    for part, pw in zip(parts, widths, strict=True):
        if part == "×":
            m, stroke = max(1, int(pw * 0.15)), max(2, size // 12)
            draw.line((x + m, y + pt + m, x + pw - m, y + pb - m), fill=INK, width=stroke)
            draw.line((x + m, y + pb - m, x + pw - m, y + pt + m), fill=INK, width=stroke)
        else:
            draw.text((x, y), part, font=font, fill=INK)
        x += pw + space
    answer = str(_evaluate(tokens))
    extra = {"background": bg, "expression": expr, "answer": answer}
    return img, f"Solve the problem in the image. {BOXED}", "math", answer, {"format": "think_answer"}, extra


def _chart(rng, image_size, index):
    img, bg = canvas(rng, image_size, noisy=False)
    w, h = img.size
    n = rng.randint(3, max(3, min(6, (w - 20) // 24)))
    start = rng.randint(0, 26 - n)
    labels = [chr(ord("A") + start + i) for i in range(n)]
    values = rng.sample(range(1, 31), n)
    font = ImageFont.load_default(size=11)
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 10, w - 10, 18, h - 16
    slot = (right - left) / n
    bar_w = max(6, int(slot * 0.6))
    color = rng.choice(list(COLORS.values()))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = left + slot * (i + 0.5)
        y1 = bottom - round((bottom - top) * value / max(values))
        draw.rectangle((round(cx - bar_w / 2), y1, round(cx + bar_w / 2) - 1, bottom - 1), fill=color)
        draw.text((cx, y1 - 2), str(value), font=font, fill=INK, anchor="ms")
        draw.text((cx, bottom + 2), label, font=font, fill=INK, anchor="mt")
    draw.line((left, bottom, right, bottom), fill=INK, width=1)
    bars = dict(zip(labels, values, strict=True))
    (a, b), c = sorted(rng.sample(labels, 2), key=bars.__getitem__, reverse=True), rng.choice(labels)
    question, answer = rng.choice(
        [
            ("What is the value of the tallest bar?", max(values)),
            ("What is the value of the shortest bar?", min(values)),
            (f"What is the value of bar {c}?", bars[c]),
            (f"How much larger is bar {a} than bar {b}?", bars[a] - bars[b]),
            ("What is the sum of the values of all bars?", sum(values)),
        ]
    )
    text = f"The image shows a bar chart. {question} {BOXED}"
    extra = {"background": bg, "bars": bars, "question": question, "answer": str(answer)}
    return img, text, "math", str(answer), {"format": "think_answer"}, extra


_BUILDERS = dict(zip(TASKS, (_detection, _grounding, _counting, _ocr, _math, _chart), strict=True))

# Tasks a tiny model can see, only when asked for by name: the default set stays TASKS.
EASY_TASKS: tuple[str, ...] = ("colour", "shape", "position", "locate")


def _builder(task: str):
    builders = {**_BUILDERS, **synth_easy.BUILDERS}
    if task not in builders:
        raise DataError(unknown_key_message("synth task", task, (*TASKS, *EASY_TASKS)))
    return builders[task]


def make_record(task: str, index: int, seed: int = 0, image_size: Sequence[int] = (112, 224)):
    """One record (a dict in the data contract) and its image; the image path is ``images/<id>.png``."""
    rng = random.Random(f"orsta-synth/{seed}/{task}/{index}")
    img, text, verifier, ground_truth, params, extra = _builder(task)(rng, image_size, index)
    rid = (
        f"{task}-s{seed}-{index:05d}"  # the seed in the id: files of different seeds can be checked together
    )
    record = {
        "id": rid,
        "data_source": f"synth_{task}",
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        "images": [f"images/{rid}.png"],
        "reward": {
            "verifier": verifier,
            "ground_truth": ground_truth,
            "accuracy_weight": 1.0,
            "format_weight": 0.1,
            "params": params,
        },
        "extra": {"task": task, "width": img.width, "height": img.height, **extra},
    }
    return record, img


def synth(
    out_dir: str | Path,
    n: int = 32,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    image_size: Sequence[int] = (112, 224),
) -> Path:
    """Write ``n`` synthetic records per task to ``out_dir/data.jsonl`` and their images to ``out_dir/images/``.

    Args:
        out_dir: the folder to write.
        n: records per task.
        seed: the same seed gives the same records and images.
        tasks: a subset of :data:`TASKS` (default: all of them), or of :data:`EASY_TASKS` (one large shape to
            name by colour or shape, :mod:`orsta_trl.data.synth_easy`).
        image_size: the (min, max) side length in pixels; each record draws its own width and height.

    Returns:
        The path of the JSONL file.
    """
    tasks = list(TASKS if tasks is None else tasks)
    for task in tasks:
        _builder(task)
    lo, hi = int(image_size[0]), int(image_size[1])
    if not 64 <= lo <= hi:
        raise DataError(f"image_size must be (min, max) with 64 <= min <= max, got {tuple(image_size)}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for task in tasks:
        for i in range(n):
            record, img = make_record(task, i, seed, (lo, hi))
            img.save(out / record["images"][0], format="PNG")
            lines.append(json.dumps(record, ensure_ascii=False))
    path = out / "data.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--n", type=int, default=32, help="records per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", choices=(*TASKS, *EASY_TASKS), default=None)
    args = parser.parse_args(argv)
    print(synth(args.out_dir, n=args.n, seed=args.seed, tasks=args.tasks))


if __name__ == "__main__":
    main()
