"""The page's data for one record and one completion: the record's images (downscaled, stored once by
content hash) and ground-truth boxes, each completion's predicted boxes in the image's original pixels, and a
tool rollout's calls with the images ``crop`` / ``zoom`` returned (recomputed with the tools' own code).

Predicted boxes are parsed with the detection verifier's parser (:func:`orsta_trl.verifiers.boxes.parse_boxes`)
and mapped from the record's ``pred_coords`` frame with its :func:`orsta_trl.verifiers.detection.frame_scale`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
from typing import Any

from orsta_trl.verifiers.boxes import as_box, parse_boxes
from orsta_trl.verifiers.detection import frame_scale

THUMB_SIDE = 320  # longest side of a stored image, in pixels
THUMB_QUALITY = 70
BOX_VERIFIERS = ("detection",)
_TOOL_RE = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>|<tool_response>\s*(.*?)\s*</tool_response>", re.S)


class ImageStore:
    """Downscaled images, each stored once under the hash of its content."""

    def __init__(self, side: int = THUMB_SIDE):
        self.side = side
        self.data: dict[str, str] = {}
        self._by_path: dict[str, tuple[str, int, int] | None] = {}

    def add_pil(self, image) -> str:
        from PIL import Image

        image = image.convert("RGB")
        raw_hash = hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest()[:16]
        if raw_hash not in self.data:
            thumb = image.copy()
            thumb.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            thumb.save(buffer, "WEBP", quality=THUMB_QUALITY, method=4)
            self.data[raw_hash] = "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode()
        return raw_hash

    def add_path(self, path: str | None) -> tuple[str, int, int] | None:
        """(hash, width, height) of the image file, or None when it cannot be read; each file is read once."""
        if path is None:
            return None
        if path not in self._by_path:
            image = open_image(path)
            self._by_path[path] = None if image is None else (self.add_pil(image), image.width, image.height)
        return self._by_path[path]


def open_image(path: str | None):
    """The file as an RGB PIL image, or None when it is missing, moved or unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except Exception:
        return None


def _gt_boxes(ground_truth: Any) -> list | None:
    items = [ground_truth] if isinstance(ground_truth, dict) else ground_truth
    if not isinstance(items, list) or not all(isinstance(i, dict) and "bbox_2d" in i for i in items):
        return None
    return [list(box) for box in map(as_box, items) if box is not None]


def round_value(value: float) -> float:
    return round(float(value), 2) if math.isfinite(value) else 0.0


def _pred_boxes(text: str, frame: str, size, settings: dict) -> tuple[list, int, str | None]:
    parsed = parse_boxes(text)
    scale = frame_scale(frame, size, settings["min_pixels"], settings["max_pixels"])
    if scale is None:
        return [], parsed.n_invalid, "no image size" if parsed.boxes else None
    sx, sy = scale
    boxes = [
        [round_value(b[0] * sx), round_value(b[1] * sy), round_value(b[2] * sx), round_value(b[3] * sy), b[4]]
        for b in parsed.boxes
    ]
    return boxes, parsed.n_invalid, None


def _tool_calls(text: str, tools: dict | None, path, store: ImageStore, settings: dict) -> list[dict]:
    """The calls of a tool transcript, each with its result, outcome and (crop / zoom) returned image, recomputed
    from the record's first image (``path``)."""
    from orsta_trl.tools.crop import ImageTools

    calls: list[dict] = []
    outcomes = list((tools or {}).get("tool_outcomes") or [])
    for match in _TOOL_RE.finditer(text):
        if match.group(1) is not None:
            try:
                body = json.loads(match.group(1))
            except json.JSONDecodeError:
                body = {"name": "?", "arguments": match.group(1)}
            body = body if isinstance(body, dict) else {"name": "?", "arguments": body}
            ok = outcomes[len(calls)] if len(calls) < len(outcomes) else None
            calls.append(
                {"name": str(body.get("name")), "args": body.get("arguments"), "ok": ok, "result": None}
            )
        elif calls and calls[-1]["result"] is None:
            calls[-1]["result"] = match.group(2)
    image = open_image(path) if any(c["name"] in ("crop", "zoom") for c in calls) and path else None
    for call in calls:
        if call["name"] in ("crop", "zoom") and image is not None and isinstance(call["args"], dict):
            env = ImageTools(settings["min_pixels"], settings["max_pixels"])
            env.reset(images=[image])
            try:
                out = getattr(env, call["name"])(**call["args"])
            except TypeError:
                out = None
            if isinstance(out, list) and out and isinstance(out[0], dict) and out[0].get("image") is not None:
                call["image"] = store.add_pil(out[0]["image"])
    return calls


def record_view(row: dict, desc: dict | None, store: ImageStore) -> dict:
    desc = desc or {}
    images = []
    sizes = desc.get("image_sizes") or []
    for index, path in enumerate(desc.get("images") or []):
        stored = store.add_path(path)
        if stored is None:
            missing = {"missing": path or "an in-memory image (not saved with the run)"}
            if index < len(sizes) and len(sizes[index]) == 2:  # boxes still land where they belong
                missing.update(w=sizes[index][0], h=sizes[index][1])
            images.append(missing)
        else:
            images.append({"hash": stored[0], "w": stored[1], "h": stored[2]})
    gt = desc.get("ground_truth")
    boxes = _gt_boxes(gt)
    params = desc.get("params") or {}
    return {
        "src": row["data_source"],
        "id": str(row["id"]),
        "known": bool(desc),
        "verifier": desc.get("verifier"),
        "frame": params.get("pred_coords", "resized"),
        "images": images,
        "gt_boxes": boxes,
        "gt_text": None if boxes is not None or gt is None else json.dumps(gt, ensure_ascii=False)[:2000],
        "_path": desc["images"][0]
        if images and "hash" in images[0]
        else None,  # for tool crops; not in the page
    }


def row_view(row: dict, view: dict, prompt: int, store: ImageStore, settings: dict) -> dict:
    text = row.get("completion") or ""
    out = {
        "step": row["step"],
        "split": row["split"],
        "src": row["data_source"],
        "id": str(row["id"]),
        "group": row.get("group"),
        "prompt": prompt,
        "text": text,
        "reward": round_value(row.get("reward") or 0.0),
        "accuracy": round_value(row.get("accuracy") or 0.0),
        "format": round_value(row.get("format") or 0.0),
        "parts": {k: round_value(v) for k, v in (row.get("parts") or {}).items()},
        "reason": row.get("reason"),
        "length": row.get("length"),
        "truncated": bool(row.get("truncated")),
        "advantage": None if row.get("advantage") is None else round(float(row["advantage"]), 3),
    }
    first = view["images"][0] if view["images"] else None
    if view["verifier"] in BOX_VERIFIERS:
        size = (first["w"], first["h"]) if first and "w" in first else None
        out["boxes"], out["invalid"], out["box_note"] = _pred_boxes(text, view["frame"], size, settings)
    tools = row.get("tools")
    if tools or "<tool_call>" in text:
        out["calls"] = _tool_calls(text, tools, view.get("_path"), store, settings)
        out["tool_failed"] = any(c["ok"] is False for c in out["calls"]) or bool(
            (tools or {}).get("hit_limit")
        )
    return out
