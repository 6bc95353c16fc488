"""COCO instances annotations + an image folder -> detection records; RefCOCO-style expressions -> grounding.

``coco``: one record per image with every category (``per="image"``) or one per image and category
(``per="category"``). COCO's ``[x, y, w, h]`` becomes ``[x1, y1, x2, y2] = [x, y, x + w, y + h]`` in the
image's original pixels (our ground-truth frame); crowd annotations (``iscrowd``) and boxes with no area are
left out, each counted as a note. An image with no box left is skipped (``no_boxes``): V-Triune's detection
data has at least one object per prompt. Prompts come from :data:`DETECTION_TEMPLATES` (our wording), the
template chosen by a hash of the record id, so output does not depend on row order or on a global seed.

``refcoco``: rows (JSONL / JSON / Parquet) with an image, a referring expression and one box become one-box
detection records whose label is the expression and ``params.match_labels: false`` (the model names the box
however it likes; only the box is scored), like V-Triune's grounding data.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

from orsta_trl.data.convert.common import ConvertReport, Skip, Writer, read_table, relative_to
from orsta_trl.errors import DataError, MissingFileError

ANSWER_FORMAT = (
    "Think inside <think></think> first, then give the boxes inside <answer></answer> as a JSON list like "
    '[{"bbox_2d": [x1, y1, x2, y2], "label": "name"}].'
)
DETECTION_TEMPLATES = (
    "Find every {labels} in this picture and give each one a bounding box.",
    "Detect all instances of {labels} in the image.",
    "Where are the {labels} in this image? Mark each with a box.",
    "Draw a bounding box around each {labels} you can see.",
    "Locate each {labels} shown in the image.",
    "List the position of every {labels} in the image as boxes.",
)
GROUNDING_TEMPLATES = (
    "Locate the region described as: {labels}.",
    "Give the bounding box of: {labels}.",
    "Which part of the image shows {labels}? Answer with one box.",
    "Find {labels} in the image and box it.",
)


def pick(templates: tuple[str, ...], key: str) -> str:
    """A template chosen by a stable hash of ``key`` (not Python's salted ``hash``)."""
    return templates[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(templates)]


def _prompt(text: str) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"{text} {ANSWER_FORMAT}"}]}
    ]


def _read_coco(path: Path) -> tuple[dict, list, list]:
    """(category id → name, images, annotations) of a COCO instances file."""
    if not path.is_file():
        raise MissingFileError(f"{path}: no such COCO annotation file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {c["id"]: c["name"] for c in data["categories"]}, data["images"], data.get("annotations", [])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(
            f"{path}: not a COCO instances file (needs images, annotations, categories): {exc}"
        ) from None


def _usable_boxes(anns: list, categories: dict, notes) -> list[dict]:
    """One image's boxes as ``{"bbox_2d": [x1, y1, x2, y2], "label"}``; crowd, empty and unknown ones counted out."""
    boxes = []
    for ann in anns:
        if ann.get("iscrowd"):
            notes["crowd annotation left out"] += 1
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0 or ann.get("category_id") not in categories:
            notes["box with no area or unknown category left out"] += 1
            continue
        boxes.append({"bbox_2d": [round(x, 2), round(y, 2), round(x + w, 2), round(y + h, 2)],
                      "label": categories[ann["category_id"]]})  # fmt: skip
    return boxes


def coco(
    annotations: str | Path,
    out: str | Path,
    *,
    images_dir: str | Path | None = None,
    per: str = "image",
    data_source: str = "coco",
) -> ConvertReport:
    """Convert a COCO instances JSON to detection records.

    Args:
        annotations: the ``instances_*.json`` file.
        out: the ``.jsonl`` to write (image paths in it are relative to its folder).
        images_dir: where ``file_name`` is found (default: the annotation file's folder).
        per: ``"image"`` (one record per image, every category) or ``"category"`` (one per image and category).
        data_source: the records' ``data_source``.

    Returns:
        The :class:`ConvertReport`.
    """
    if per not in ("image", "category"):
        raise DataError(f"coco: per must be 'image' or 'category', got {per!r}")
    path = Path(annotations)
    categories, images, anns = _read_coco(path)
    folder = Path(images_dir) if images_dir else path.parent
    writer = Writer(out)
    by_image = defaultdict(list)
    for ann in anns:
        by_image[ann.get("image_id")].append(ann)

    def rows():
        for index, image in enumerate(sorted(images, key=lambda i: i["id"])):
            yield f"{path}:images[{index}]", image

    def records(location: str, image: dict):
        boxes = _usable_boxes(by_image.get(image["id"], []), categories, writer.report.notes)
        if not boxes:
            raise Skip("no_boxes", f"image {image['id']} has no usable box")
        file = folder / image["file_name"]
        if not file.is_file():
            raise Skip("missing_image", f"no image file {file}")
        rel = relative_to(file, writer.out.parent)
        groups = {"": boxes} if per == "image" else defaultdict(list)
        if per == "category":
            for box in boxes:
                groups[box["label"]].append(box)
        for label, group in sorted(groups.items()):
            rid = f"{image['id']}" + (f"-{label.replace(' ', '_')}" if label else "")
            names = label or ", ".join(sorted({b["label"] for b in group}))
            text = pick(DETECTION_TEMPLATES, rid).format(labels=names)
            yield rid, {
                "id": rid, "data_source": data_source, "prompt": _prompt(text), "images": [rel],
                "reward": {"verifier": "detection", "ground_truth": group, "accuracy_weight": 1.0,
                           "format_weight": 0.1},
                "extra": {"coco_image_id": image["id"]},
            }  # fmt: skip

    for location, image in rows():
        try:
            for _, raw in records(location, image):
                writer.add(location, raw)
        except Skip as exc:
            writer.report.skip(location, exc.reason, exc.detail)
        except (KeyError, TypeError, ValueError) as exc:
            writer.report.skip(location, "bad_annotation", repr(exc))
    return writer.close()


def refcoco(
    src: str | Path,
    out: str | Path,
    *,
    images_dir: str | Path | None = None,
    bbox_format: str = "xywh",
    data_source: str = "refcoco",
) -> ConvertReport:
    """Convert referring expressions with one box each to grounding records.

    Each row has an image (``image``: a path or ``{bytes}``; or ``file_name``), an expression (``expression``,
    ``sentence``, or a list ``sentences``: one record per sentence) and ``bbox``; ``id`` / ``ref_id`` if present.

    Args:
        src: JSONL, JSON list or Parquet.
        out: the ``.jsonl`` to write.
        images_dir: where relative image paths are found (default: the input's folder).
        bbox_format: ``"xywh"`` (COCO, RefCOCO's annotations) or ``"xyxy"``.
        data_source: the records' ``data_source``.

    Returns:
        The :class:`ConvertReport`.
    """
    if bbox_format not in ("xywh", "xyxy"):
        raise DataError(f"refcoco: bbox_format must be 'xywh' or 'xyxy', got {bbox_format!r}")
    folder = Path(images_dir) if images_dir else Path(src).parent
    writer = Writer(out)
    for location, row in read_table(src):
        try:
            if isinstance(row, Skip):
                raise row
            for raw in _grounding(location, row, writer, folder, bbox_format, data_source):
                writer.add(location, raw)
        except Skip as exc:
            writer.report.skip(location, exc.reason, exc.detail)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a field of an unexpected type
            writer.report.skip(location, "bad_row", f"{type(exc).__name__}: {exc}")
    return writer.close()


def _grounding(location, row, writer, folder, bbox_format, data_source):
    sentences = row.get("sentences") or [row.get("expression") or row.get("sentence")]
    sentences = [s.get("sent", s.get("raw")) if isinstance(s, dict) else s for s in sentences]
    sentences = [s.strip() for s in sentences if isinstance(s, str) and s.strip()]
    if not sentences:
        raise Skip("no_expression", "no expression, sentence or sentences")
    box = row.get("bbox")
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise Skip("bad_box", f"bbox must be 4 numbers, got {box!r}")
    x1, y1, a, b = (float(v) for v in box)
    x2, y2 = (x1 + a, y1 + b) if bbox_format == "xywh" else (a, b)
    image = writer.images.image(row.get("image") or row.get("file_name"), folder)
    base = str(row.get("id", row.get("ref_id", location.rsplit("[", 1)[-1].rstrip("]").split(":")[-1])))
    for n, sentence in enumerate(sentences):
        rid = base if len(sentences) == 1 else f"{base}-{n}"
        text = pick(GROUNDING_TEMPLATES, rid).format(labels=sentence)
        yield {
            "id": rid, "data_source": data_source, "prompt": _prompt(text), "images": [image],
            "reward": {"verifier": "detection", "accuracy_weight": 1.0, "format_weight": 0.1,
                       "ground_truth": [{"bbox_2d": [round(v, 2) for v in (x1, y1, x2, y2)], "label": sentence}],
                       "params": {"match_labels": False}},
        }  # fmt: skip
