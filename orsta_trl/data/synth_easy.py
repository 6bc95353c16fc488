"""Synthetic tasks that a tiny model can see: one large shape on a 112x112 canvas, name its colour or its shape.

The tasks of :mod:`orsta_trl.data.synth` (11-22 px shapes, counting, digits, text) are beyond what a
random-weight tiny vision tower resolves: a linear probe on its pooled features reaches 41 % on colour there.
These tasks draw ONE shape of 28-40 px in the middle region of a fixed 112x112 canvas (16 image tokens), so that
the demo can show learning in minutes on a CPU:

* ``colour``: "What colour is the shape?" - one of the 5 colours of :data:`~orsta_trl.data.synth.COLORS`;
* ``shape``: "What shape is it?" - circle, square or triangle.

Both are scored by the ``ocr`` verifier (exact match, case folded); the reference answer is
``extra["answer"]``. The canvas ignores ``synth``'s ``image_size``: it is always 112x112.
"""

from __future__ import annotations

import random

from orsta_trl.data import synth as base

EASY_SIDE = 112
ANSWER = "Give the answer as one word inside <answer></answer>."


def _one_shape(rng: random.Random):
    """A 112x112 canvas with one 28-40 px shape; returns (image, background, shape, colour)."""
    img, bg = base._canvas(rng, (EASY_SIDE, EASY_SIDE))
    shape, colour = rng.choice(base.SHAPES), rng.choice(list(base.COLORS))
    side = rng.randint(28, 40)
    x, y = rng.randint(8, EASY_SIDE - side - 8), rng.randint(8, EASY_SIDE - side - 8)
    base._draw_shape(base.ImageDraw.Draw(img), shape, (x, y, x + side, y + side), base.COLORS[colour])
    return img, bg, shape, colour


def _colour(rng, image_size, index):
    img, bg, shape, colour = _one_shape(rng)
    text = f"What colour is the shape? {ANSWER}"
    return img, text, "ocr", colour, {"mode": "exact"}, {"background": bg, "shape": shape, "answer": colour}


def _shape(rng, image_size, index):
    img, bg, shape, colour = _one_shape(rng)
    text = f"What shape is it (circle, square or triangle)? {ANSWER}"
    return img, text, "ocr", shape, {"mode": "exact"}, {"background": bg, "colour": colour, "answer": shape}


#: Task name -> builder, with the signature of synth's own builders.
BUILDERS = {"colour": _colour, "shape": _shape}
