"""Synthetic tasks that a tiny model can see: one large shape on a 112x112 canvas, name its colour or its shape.

The tasks of :mod:`orsta_trl.data.synth` (11-22 px shapes, counting, digits, text) are beyond what a
random-weight tiny vision tower resolves: a linear probe on its pooled features reaches 41 % on colour there.
These tasks draw ONE shape of 28-64 px on a fixed 112x112 canvas (16 image tokens), so that
the demo can show learning in minutes on a CPU:

* ``colour``: "What colour is the shape?" - one of the 5 colours of :data:`~orsta_trl.data.drawing.COLORS`;
* ``shape``: "What shape is it?" - circle, square or triangle (a larger shape, 44-64 px);
* ``position``: "Where is the shape?" - top left, top right, bottom left or bottom right (its quadrant).
  Measured: a 600-step warm-up on colour, shape and position left position at chance (0.25, one answer for
  every image), so the demo uses colour and shape only.
* ``locate``: "Give the box of the red circle." - grounding: one large shape (40-64 px), its tight box
  ``[{"bbox_2d": [x1, y1, x2, y2]}]`` in pixels, scored by the ``detection`` verifier (labels not matched,
  the IoU threshold from the recipe's ``iou_schedule``). Position is not recoverable through the frozen random
  vision tower (see ``position``), so this task needs a warm-up that trains the vision tower, and a long one:
  3000 steps on 2000 records reach a held-out mean IoU of 0.60-0.65 on 3 seeds of 5 (the other 2 are still on
  the loss plateau at step 3000), where 600 steps on 400 records stayed below the image-blind mean box (0.40)
  on every seed (``benchmarks/iou_schedule.py``, README "Grounding and the dynamic IoU").

The first three are scored by the ``ocr`` verifier (exact match, case folded); the reference answer is
``extra["answer"]``. The canvas ignores ``synth``'s ``image_size``: it is always 112x112, which Qwen2.5-VL's
processor does not resize within the demo's pixel bounds, so boxes in the model's input pixels are image pixels.
"""

from __future__ import annotations

import json
import random

from PIL import Image, ImageDraw

from orsta_trl.data.drawing import COLORS, SHAPES, canvas, draw_shape

EASY_SIDE = 112
ANSWER = "Give the answer inside <answer></answer>."


def _one_shape(
    rng: random.Random, low: int = 28, high: int = 40, region=(8, 8, EASY_SIDE - 8, EASY_SIDE - 8)
):
    """A 112x112 canvas with one shape of side in [low, high] inside ``region`` (x1, y1, x2, y2); returns
    (image, background, shape, colour)."""
    return _one_shape_in_box(rng, low, high, region)[:4]


def _one_shape_in_box(rng: random.Random, low: int, high: int, region):
    """:func:`_one_shape` and the box the shape was drawn in."""
    img, bg = canvas(rng, (EASY_SIDE, EASY_SIDE))
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLORS))
    side = rng.randint(low, high)
    x, y = rng.randint(region[0], region[2] - side), rng.randint(region[1], region[3] - side)
    box = (x, y, x + side, y + side)
    draw_shape(ImageDraw.Draw(img), shape, box, COLORS[colour])
    return img, bg, shape, colour, box


def _colour(rng, image_size, index):
    img, bg, shape, colour = _one_shape(rng)
    text = f"What colour is the shape? {ANSWER}"
    return img, text, "ocr", colour, {"mode": "exact"}, {"background": bg, "shape": shape, "answer": colour}


def _shape(rng, image_size, index):
    img, bg, shape, colour = _one_shape(rng, 44, 64)
    text = f"What shape is it (circle, square or triangle)? {ANSWER}"
    return img, text, "ocr", shape, {"mode": "exact"}, {"background": bg, "colour": colour, "answer": shape}


def _position(rng, image_size, index):
    half = EASY_SIDE // 2
    vertical, horizontal = rng.choice(("top", "bottom")), rng.choice(("left", "right"))
    x, y = (2 if horizontal == "left" else half), (2 if vertical == "top" else half)
    img, bg, shape, colour = _one_shape(rng, 28, 40, (x, y, x + half - 2, y + half - 2))
    answer = f"{vertical} {horizontal}"
    text = f"Where is the shape (top left, top right, bottom left or bottom right)? {ANSWER}"
    return img, text, "ocr", answer, {"mode": "exact"}, {"background": bg, "shape": shape, "answer": answer}


def _locate(rng, image_size, index):
    img, bg, shape, colour, box = _one_shape_in_box(rng, 40, 64, (4, 4, EASY_SIDE - 4, EASY_SIDE - 4))
    mask = Image.new("L", img.size, 0)  # the tight box of the drawn pixels, like synth's detection boxes
    draw_shape(ImageDraw.Draw(mask), shape, box, 255)
    tight = list(mask.getbbox())
    label = f"{colour} {shape}"
    text = (
        f'Give the box of the {label}. Answer inside <answer></answer> as [{{"bbox_2d": [x1, y1, x2, y2]}}].'
    )
    gt = [{"bbox_2d": tight, "label": label}]
    extra = {"background": bg, "target": label, "answer": json.dumps([{"bbox_2d": tight}])}
    return img, text, "detection", gt, {"match_labels": False}, extra


#: Task name -> builder, with the signature of synth's own builders.
BUILDERS = {"colour": _colour, "shape": _shape, "position": _position, "locate": _locate}
