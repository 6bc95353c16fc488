"""``crop`` and ``zoom``: a region of the record's image, returned to the VLM as an image.

They need the record's image, so they are methods of :class:`ImageTools`, an environment in TRL's sense
(``environment_factory``): TRL makes one instance per rollout and calls ``reset(**row)`` with the dataset row
before generation; the instance keeps that row's images. The result is a list of content parts
(``[{"type": "image", "image": PIL.Image}, {"type": "text", ...}]``), which TRL's loop appends to the
conversation and feeds to the processor (its tool-image path).

Coordinates are pixels of the model's input image, as Qwen2.5-VL's boxes are (the resized image:
``qwen_vl_utils.smart_resize`` within the recipe's ``min_pixels``/``max_pixels``); they are mapped back to the
original image before cropping, so the crop keeps the original's detail.
"""

from __future__ import annotations

from orsta_trl.tools.result import ToolResult
from orsta_trl.verifiers.boxes import resized_scale

MIN_SIDE = 28  # one Qwen2.5-VL patch after merging


IMAGE_TOOLS = ("crop", "zoom")


class _ImageBase:
    """The row's images and the region arithmetic; no public tool method of its own.

    Args:
        min_pixels, max_pixels: the processor's pixel bounds (the resized frame the model's coordinates use).
    """

    def __init__(self, min_pixels: int = 3136, max_pixels: int = 12845056):
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.images: list = []

    def reset(self, **row) -> None:
        """Keep this rollout's images (TRL calls this with the dataset row before generation)."""
        self.images = [img for img in (row.get("images") or []) if img is not None]
        return None

    def _region(self, x1, y1, x2, y2, image_index):
        from PIL import Image

        if not self.images:
            return "Error: this task has no image"
        try:
            index = int(image_index)
            box = [float(v) for v in (x1, y1, x2, y2)]
        except (TypeError, ValueError):
            return "Error: the coordinates and image_index must be numbers"
        if not 0 <= index < len(self.images):
            return f"Error: image_index must be between 0 and {len(self.images) - 1}"
        image = self.images[index]
        if not isinstance(image, Image.Image):
            return "Error: the image is not loaded"
        width, height = image.size
        sx, sy = resized_scale(width, height, self.min_pixels, self.max_pixels)
        left, right = sorted((box[0] * sx, box[2] * sx))
        top, bottom = sorted((box[1] * sy, box[3] * sy))
        left, top = max(0.0, left), max(0.0, top)
        right, bottom = min(float(width), right), min(float(height), bottom)
        if right - left < 1 or bottom - top < 1:
            rw, rh = round(width / sx), round(height / sy)  # the model's frame, the one it gave the box in
            return f"Error: the box {box} lies outside the {rw}x{rh} image or is empty"
        return image.crop((round(left), round(top), round(right), round(bottom))).convert("RGB")


class ImageTools(_ImageBase):
    """Per-rollout ``crop`` and ``zoom`` over the row's images (:func:`image_tools_factory` picks a subset)."""

    def crop(self, x1: float, y1: float, x2: float, y2: float, image_index: int = 0) -> list:
        """Crop a region of the image and look at it.

        Args:
            x1: Left edge of the region, in pixels of the image as you see it.
            y1: Top edge of the region, in pixels.
            x2: Right edge of the region, in pixels.
            y2: Bottom edge of the region, in pixels.
            image_index: Which image of the task (0 for the first).

        Returns:
            The cropped region as an image, or a message starting with "Error".
        """
        try:
            region = self._region(x1, y1, x2, y2, image_index)
        except Exception as exc:  # a tool never crashes the rollout
            return ToolResult(f"Error: {type(exc).__name__}: {exc}", ok=False)
        if isinstance(region, str):
            return ToolResult(region, ok=False)
        region = _at_least(region, MIN_SIDE)
        return [
            {"type": "image", "image": region},
            {"type": "text", "text": f"crop {region.width}x{region.height}"},
        ]

    def zoom(
        self, x1: float, y1: float, x2: float, y2: float, factor: float = 2.0, image_index: int = 0
    ) -> list:
        """Zoom into a region of the image: crop it and enlarge it.

        Args:
            x1: Left edge of the region, in pixels of the image as you see it.
            y1: Top edge of the region, in pixels.
            x2: Right edge of the region, in pixels.
            y2: Bottom edge of the region, in pixels.
            factor: How much to enlarge the region (between 1 and 4).
            image_index: Which image of the task (0 for the first).

        Returns:
            The enlarged region as an image, or a message starting with "Error".
        """
        try:
            factor = float(factor)
            if not 1.0 <= factor <= 4.0:
                return ToolResult(f"Error: factor must be between 1 and 4, got {factor:g}", ok=False)
            region = self._region(x1, y1, x2, y2, image_index)
            if isinstance(region, str):
                return ToolResult(region, ok=False)
            size = (max(1, round(region.width * factor)), max(1, round(region.height * factor)))
            region = _at_least(region.resize(size), MIN_SIDE)
        except Exception as exc:
            return ToolResult(f"Error: {type(exc).__name__}: {exc}", ok=False)
        return [
            {"type": "image", "image": region},
            {"type": "text", "text": f"zoom {region.width}x{region.height}"},
        ]


def _at_least(image, side: int):
    """Pad a tiny region to ``side`` pixels per side (the processor cannot take a region smaller than a patch)."""
    if image.width >= side and image.height >= side:
        return image
    from PIL import Image

    canvas = Image.new("RGB", (max(side, image.width), max(side, image.height)), "black")
    canvas.paste(image, (0, 0))
    return canvas


def image_tools_factory(names, min_pixels: int, max_pixels: int):
    """An ``environment_factory`` for TRL whose instances expose only ``names`` (a subset of crop, zoom).

    Args:
        names: the image tools the recipe enabled.
        min_pixels, max_pixels: the recipe's pixel bounds.

    Returns:
        A function making a fresh environment per rollout whose public methods are exactly those tools.
    """
    methods = {name: vars(ImageTools)[name] for name in IMAGE_TOOLS if name in set(names)}
    cls = type("ImageTools", (_ImageBase,), methods)  # TRL exposes every public method as a tool

    def make():
        return cls(min_pixels, max_pixels)

    return make
