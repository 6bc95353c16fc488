"""V-Triune's released Parquet (verl's RL format with V-Triune's ``reward_model``) -> our records.

Schema, from their code (MiniMax-AI/One-RL-to-See-Them-All: ``verl/utils/dataset/rl_dataset.py``,
``verl/workers/reward_manager/remote.py``, ``reward_server/verify.py``)::

    data_source: str
    prompt: [{role, content: str}]          # "<image>" marks where each image goes
    images: [{bytes, path}]
    reward_model: {verifier: "mathverify" | "detection", ground_truth: str, answer: str,
                   accuracy_ratio: float | None, format_ratio: float | None,
                   verifier_parm: {det_verifier_normalized, det_reward_ratio, ...}}   # or those two flat
    extra_info: {id | index, ...}; ability: str

How each setting maps (the README's table says the same):

* ``mathverify`` -> ``math``; ``format_ratio == 0`` -> ``params.format: none`` (their free-form prompts), else
  ``think_answer``. ``detection`` -> ``detection``; other verifiers are skipped (``unknown_verifier``).
* ``accuracy_ratio`` / ``format_ratio`` -> ``accuracy_weight`` / ``format_weight``; missing ones take their
  reward server's defaults (1.0 and 0.1). Both formulas are (a x acc + f x fmt) / (a + f).
* Detection ``ground_truth`` ``<answer>[{"bbox_2d", "label"}]</answer>`` -> the box list. With
  ``det_verifier_normalized`` their boxes are on a 0-1000 grid of the image and predictions (Qwen2.5-VL input
  pixels) are normalised to that grid; we keep ground truth in original pixels (x W / 1000, 2 decimals) and map
  predictions back with ``pred_coords: resized``, which compares the same thing. Without the flag the boxes
  are taken as original pixels.
* ``det_reward_ratio`` {iou_max_label_first, iou_max_iou_first, iou_completeness, map, map50, map75}:
  ``iou_completeness`` -> ``params.completeness_weight``; the two IoU matchers -> ``params.matching``
  (``greedy_label_first`` / ``greedy_iou_first``; when both are weighted the larger wins, counted as a note);
  ``map``/``map50``/``map75`` -> ``extra_weights`` ``ap``/``ap50``/``ap75`` scaled so that the total weight
  and every share equal theirs.
* No equivalent: their process-wide ``DET_IOU_THRESHOLD`` (use the recipe's ``iou_schedule`` or
  ``params.iou_threshold``), their image pre-resize to [512², 2048²] pixels (we use the recipe's
  min/max_pixels), ``reward_model.answer`` and ``extra_info`` (kept in ``extra.vtriune``).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from orsta_trl.data.convert.common import (
    ConvertReport,
    Skip,
    Writer,
    json_safe,
    read_table,
    run_rows,
    split_image_tags,
)

VERIFIERS = {"mathverify": "math", "detection": "detection"}
DET_RATIO_KEYS = ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def vtriune(src: str | Path, out: str | Path) -> ConvertReport:
    """Convert a V-Triune Parquet (or JSONL) file to a JSONL of our records.

    Args:
        src: V-Triune's file (``.parquet``, or ``.jsonl`` / ``.json`` with the same fields).
        out: the ``.jsonl`` to write; images go to ``images/`` beside it.

    Returns:
        The :class:`ConvertReport` (written, skipped per reason).
    """
    return run_rows(read_table(src), Writer(out), _record)


def row_id(row: dict, location: str) -> str:
    """``extra_info.id`` (or ``index``), else the row number in the file."""
    info = row.get("extra_info") or {}
    for key in ("id", "index"):
        if isinstance(info, dict) and info.get(key) not in (None, ""):
            return str(info[key])
    return "row" + re.sub(r"\D", "", location.rsplit("[", 1)[-1]).zfill(6)


def chat(prompt, location: str) -> list[dict]:
    """verl chat messages (string contents with ``<image>`` markers) as our content parts."""
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise Skip("bad_prompt", "prompt must be a non-empty list of messages")
    messages = []
    for message in prompt:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            content = split_image_tags(content)
        if not isinstance(content, list):
            raise Skip("bad_prompt", f"message content must be a string, got {type(content).__name__}")
        messages.append({"role": message.get("role"), "content": content})
    return messages


def _record(location: str, row: dict, writer: Writer) -> dict:
    reward_model = row.get("reward_model") or {}
    name = reward_model.get("verifier")
    if name not in VERIFIERS:
        raise Skip("unknown_verifier", f"reward_model.verifier {name!r} (known: {sorted(VERIFIERS)})")
    images = [writer.images.image(image, Path(location).parent) for image in row.get("images") or []]
    acc = reward_model.get("accuracy_ratio")
    fmt = reward_model.get("format_ratio")
    reward = {
        "verifier": VERIFIERS[name],
        "accuracy_weight": 1.0 if acc is None else float(acc),
        "format_weight": 0.1 if fmt is None else float(fmt),
    }
    truth = reward_model.get("ground_truth")
    if name == "mathverify":
        reward["ground_truth"] = truth
        reward["params"] = {"format": "none" if reward["format_weight"] == 0 else "think_answer"}
    else:
        params = reward_model.get("verifier_parm") or {}
        if isinstance(params, str):
            params = json.loads(params or "{}")
        get = lambda key: reward_model.get(key, params.get(key))  # noqa: E731
        boxes = parse_answer_boxes(truth)
        if get("det_verifier_normalized"):
            boxes = _from_norm1000(boxes, images, writer)
        reward["ground_truth"] = boxes
        _detection_weights(reward, get("det_reward_ratio"), writer.report)
    extra = {k: json_safe(row[k]) for k in ("ability", "extra_info") if row.get(k) is not None}
    if reward_model.get("answer") is not None:
        extra["answer"] = json_safe(reward_model["answer"])
    return {
        "id": row_id(row, location),
        "data_source": str(row.get("data_source") or "vtriune"),
        "prompt": chat(row.get("prompt"), location),
        "images": images,
        "reward": reward,
        "extra": {"vtriune": extra} if extra else {},
    }


def parse_answer_boxes(truth) -> list[dict]:
    """``<answer>[{'bbox_2d': [...], 'label': ...}]</answer>`` (JSON or Python literal) -> a list of dicts."""
    if isinstance(truth, list):
        return truth
    if not isinstance(truth, str):
        raise Skip("bad_ground_truth", f"detection ground_truth must be a string, got {type(truth).__name__}")
    match = ANSWER.search(truth)
    text = (match.group(1) if match else truth).strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            boxes = parse(text)
            break
        except (ValueError, SyntaxError):
            continue
    else:
        raise Skip("bad_ground_truth", f"cannot parse boxes from {truth[:120]!r}")
    if isinstance(boxes, dict):
        boxes = [boxes]
    if not isinstance(boxes, list):
        raise Skip("bad_ground_truth", f"boxes must be a list, got {type(boxes).__name__}")
    return boxes


def _from_norm1000(boxes: list[dict], images: list[str], writer: Writer) -> list[dict]:
    from PIL import Image

    if not images:
        raise Skip("no_image", "det_verifier_normalized needs the image size, and the row has no image")
    with Image.open(writer.out.parent / images[0]) as image:
        width, height = image.size
    scaled = []
    for box in boxes:
        coords = box.get("bbox_2d") if isinstance(box, dict) else None
        if not isinstance(coords, list | tuple) or len(coords) != 4:
            raise Skip("bad_ground_truth", f"box without a 4-number bbox_2d: {box!r}"[:200])
        x1, y1, x2, y2 = (float(c) for c in coords)
        factors = (width / 1000, height / 1000, width / 1000, height / 1000)
        new = [round(c * f, 2) for c, f in zip((x1, y1, x2, y2), factors, strict=True)]
        scaled.append({**box, "bbox_2d": new})
    return scaled


def _detection_weights(reward: dict, ratio, report: ConvertReport) -> None:
    """Spread ``accuracy_weight`` over the IoU accuracy and the AP parts in ``det_reward_ratio``'s shares."""
    if not isinstance(ratio, dict):
        return
    r = {key: float(ratio.get(key) or 0.0) for key in DET_RATIO_KEYS}
    params = {"completeness_weight": min(max(r["iou_completeness"], 0.0), 1.0)}
    label, iou = r["iou_max_label_first"], r["iou_max_iou_first"]
    if label and iou:
        report.notes["det_reward_ratio weights both IoU matchers: the larger one is used"] += 1
    params["matching"] = "greedy_iou_first" if iou > label else "greedy_label_first"
    total = label + iou + r["map"] + r["map50"] + r["map75"]
    if total > 0:
        acc = reward["accuracy_weight"]
        reward["accuracy_weight"] = round(acc * (label + iou) / total, 6)
        extra = {
            p: round(acc * r[k] / total, 6) for p, k in (("ap", "map"), ("ap50", "map50"), ("ap75", "map75"))
        }
        reward["extra_weights"] = {k: v for k, v in extra.items() if v > 0}
    reward["params"] = params
