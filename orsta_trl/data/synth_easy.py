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

All are scored by the ``ocr`` verifier (exact match, case folded); the reference answer is
``extra["answer"]``. The canvas ignores ``synth``'s ``image_size``: it is always 112x112.
"""

from __future__ import annotations

import random

from PIL import ImageDraw

from orsta_trl.data.drawing import COLORS, SHAPES, canvas, draw_shape

EASY_SIDE = 112
ANSWER = "Give the answer inside <answer></answer>."


def _one_shape(
    rng: random.Random, low: int = 28, high: int = 40, region=(8, 8, EASY_SIDE - 8, EASY_SIDE - 8)
):
    """A 112x112 canvas with one shape of side in [low, high] inside ``region`` (x1, y1, x2, y2); returns
    (image, background, shape, colour)."""
    img, bg = canvas(rng, (EASY_SIDE, EASY_SIDE))
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLORS))
    side = rng.randint(low, high)
    x, y = rng.randint(region[0], region[2] - side), rng.randint(region[1], region[3] - side)
    draw_shape(ImageDraw.Draw(img), shape, (x, y, x + side, y + side), COLORS[colour])
    return img, bg, shape, colour


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


#: Task name -> builder, with the signature of synth's own builders.
BUILDERS = {"colour": _colour, "shape": _shape, "position": _position}
