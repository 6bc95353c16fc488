"""Drawing helpers shared by the synthetic tasks (:mod:`orsta_trl.data.synth`, :mod:`orsta_trl.data.synth_easy`):
the shapes and colours, image sides that Qwen2.5-VL's resize keeps, backgrounds, and shapes drawn to a box."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 160, 70), "blue": (40, 80, 220), "orange": (240, 140, 20),
    "purple": (140, 60, 190),
}  # fmt: skip
BACKGROUNDS = ((245, 245, 245), (236, 236, 226), (240, 244, 250), (250, 246, 236))


def side(rng: random.Random, low: int, high: int) -> int:
    """A side length in [low, high], a multiple of 28 when the range holds one (Qwen2.5-VL's resize keeps it)."""
    multiples = range(-(-low // 28) * 28, high + 1, 28)
    return rng.choice(multiples) if multiples else rng.randint(low, high)


def canvas(rng: random.Random, size: Sequence[int], noisy: bool | None = None, wide: bool = False):
    """A plain or lightly noisy background (noise within about 15 levels of the base colour), and its base."""
    w, h = side(rng, (size[0] + size[1]) // 2 if wide else size[0], size[1]), side(rng, *size)
    base = rng.choice(BACKGROUNDS)
    img = Image.new("RGB", (w, h), base)
    if (rng.random() < 0.5) if noisy is None else noisy:
        img = Image.blend(img, Image.frombytes("L", (w, h), rng.randbytes(w * h)).convert("RGB"), 0.06)
    return img, list(base)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Sequence[int], fill: Any) -> None:
    x1, y1, x2, y2 = box[0], box[1], box[2] - 1, box[3] - 1
    if shape == "circle":
        draw.ellipse((x1, y1, x2, y2), fill=fill)
    elif shape == "square":
        draw.rectangle((x1, y1, x2, y2), fill=fill)
    else:
        draw.polygon([((x1 + x2) // 2, y1), (x1, y2), (x2, y2)], fill=fill)
