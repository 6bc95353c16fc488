"""A run folder for the viewer, written with the real dump writer (no training): detection records on PIL
images, completions whose boxes are given in Qwen2.5-VL's resized frame, a text source without images, a tool
rollout with a ``crop`` call, and real TensorBoard scalars. Shared by tests/test_viewer.py and
benchmarks/viewer.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from orsta_trl.monitor.dumps import CompletionDumper
from orsta_trl.rewards.sample import Sample

# a 500x300 image: within these bounds Qwen2.5-VL's input is 280x168 (smart_resize), so the resized frame and
# the original pixels differ by 500/280 across and 300/168 down
MIN_PIXELS, MAX_PIXELS = 3136, 50176
SIZE = (500, 300)
RESIZED = (280, 168)
KNOWN_BOX = (100, 60, 300, 180)  # the known record's shape, original pixels
GROUP = 4


def to_resized(box):
    sx, sy = SIZE[0] / RESIZED[0], SIZE[1] / RESIZED[1]
    return [round(box[0] / sx, 3), round(box[1] / sy, 3), round(box[2] / sx, 3), round(box[3] / sy, 3)]


def _image(path: Path, box, colour) -> None:
    image = Image.new("RGB", SIZE, (235, 235, 228))
    draw = ImageDraw.Draw(image)
    for k in range(0, SIZE[0], 25):  # texture, so the image is not trivially compressible
        draw.line([(k, 0), (k + 40, SIZE[1])], fill=(200 + k % 40, 210, 220 - k % 30))
    draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=colour)
    image.save(path)


def _box_text(boxes, label="box") -> str:
    items = ", ".join(json.dumps({"bbox_2d": b, "label": label}) for b in boxes)
    return f"<think>looking</think><answer>[{items}]</answer>"


def write_run(
    folder: Path,
    *,
    n_records: int = 6,
    steps: int = 3,
    extra_rows: bool = True,
    seed: int = 0,
    start_step: int = 1,
) -> Path:
    """Write records, images, dumps and scalars under ``folder``; return the run directory."""
    rng = random.Random(seed)
    run, images = folder / "run", folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = {}
    for k in range(n_records):
        box = KNOWN_BOX if k == 0 else _random_box(rng)
        path = images / f"img{k}.png"
        if not path.exists():
            _image(path, box, (220, 40 + 30 * (k % 5), 40))
        records[("det", f"r{k}")] = {
            "id": f"r{k}", "data_source": "det", "images": [str(path.resolve())], "image_sizes": [list(SIZE)],
            "verifier": "detection", "ground_truth": [{"bbox_2d": list(box), "label": "box"}],
            "params": {"pred_coords": "resized"},
        }  # fmt: skip
    records[("tools", "k0")] = {**records[("det", "r0")], "id": "k0", "data_source": "tools", "verifier": "tool",
                                "ground_truth": "red", "params": {}}  # fmt: skip
    records[("txt", "t0")] = {"id": "t0", "data_source": "txt", "images": [], "image_sizes": [], "verifier": "math",
                              "ground_truth": "42", "params": {}}  # fmt: skip
    dumper = CompletionDumper(run, 1.0)

    def describe(source, rid):
        return records.get((source, rid))

    dumper.write_meta(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, num_generations=GROUP, max_steps=steps)
    for step in range(start_step, start_step + steps):
        rows, prompts = [], []
        for (source, rid), rec in records.items():
            if source != "det":
                continue
            gt = rec["ground_truth"][0]["bbox_2d"]
            for g in range(GROUP):
                jitter = 0 if (rid == "r0" and g == 0) else rng.uniform(-20, 20)
                pred = [gt[0] + jitter, gt[1] + jitter, gt[2] + jitter, gt[3] + jitter]
                reward = max(0.0, 1 - abs(jitter) / 20)
                rows.append(Sample("det", rid, "detection", reward, reward, 1.0, {"ap": reward}, None,
                                   _box_text([to_resized(pred)]), 40, False))  # fmt: skip
                prompts.append(f"Locate every box in image {rid}.")
        if extra_rows:
            rows += [
                Sample("txt", "t0", "math", 0.0, 0.0, 0.0, {}, "no_answer",
                       'I think <script>document.body.setAttribute("data-pwned", "1")</script>'
                       '<img src=x onerror="document.body.setAttribute(\'data-pwned\', \'2\')"> maybe', 12, True),
                Sample("txt", "t0", "math", 1.0, 1.0, 1.0, {}, None, "<answer>42</answer>", 5, False),
                Sample("txt", "t0", "math", 0.0, 0.0, 1.0, {}, "wrong_answer", "<answer>41</answer>", 5, False),
                Sample("txt", "t0", "math", 0.5, 0.5, 1.0, {}, None, "<answer>42.0</answer>", 5, False),
            ]  # fmt: skip
            prompts += ["What is 6 * 7? <b>bold</b>"] * 4
            outcomes = {
                "tool_outcomes": [True, False],
                "tool_names": ["crop", "crop"],
                "turns": 3,
                "hit_limit": False,
            }
            plain = {"tool_outcomes": [], "tool_names": [], "turns": 1, "hit_limit": False}
            rows += [Sample("tools", "k0", "tool", 0.5, 0.5, 1.0, {}, None, tool_transcript(to_resized(KNOWN_BOX)),
                            60, False, tools=outcomes)]  # fmt: skip
            rows += [Sample("tools", "k0", "tool", 0.0, 0.0, 1.0, {}, "wrong_answer", "<answer>1</answer>", 4,
                            False, tools=plain) for _ in range(GROUP - 1)]  # fmt: skip
            prompts += ["Use the tools: what colour is the box?"] * GROUP
        rewards = [r.reward for r in rows]
        advantages = []
        for start in range(0, len(rewards), GROUP):
            chunk = rewards[start : start + GROUP]
            mean = sum(chunk) / GROUP
            std = (sum((r - mean) ** 2 for r in chunk) / (GROUP - 1)) ** 0.5
            advantages += [(r - mean) / (std + 1e-4) for r in chunk]
        dumper.write(
            step, rows, prompts, groups=[i // GROUP for i in range(len(rows))], advantages=advantages,
            describe=describe,
        )  # fmt: skip
        eval_rows = [Sample("det", rid, "detection", 0.5, 0.5, 1.0, {}, "wrong_answer" if rid == "r1" else None,
                            _box_text([to_resized(rec["ground_truth"][0]["bbox_2d"])]), 30, False)
                     for (source, rid), rec in records.items() if source == "det"]  # fmt: skip
        dumper.write(step, eval_rows, ["held-out prompt"] * len(eval_rows), split="eval", describe=describe)
    _scalars(run, start_step, steps)
    with (folder / "data.jsonl").open(
        "w"
    ) as handle:  # the records as a data file (for dumps without sidecar)
        for rec in records.values():
            reward = {
                "verifier": rec["verifier"],
                "ground_truth": rec["ground_truth"],
                "params": rec["params"],
            }
            prompt = [{"role": "user", "content": [{"type": "text", "text": "?"}]}]
            handle.write(json.dumps({"id": rec["id"], "data_source": rec["data_source"], "prompt": prompt,
                                     "images": rec["images"], "reward": reward}) + "\n")  # fmt: skip
    return run


def _random_box(rng):
    x, y = rng.randint(10, 300), rng.randint(10, 150)
    return (x, y, x + rng.randint(40, 180), y + rng.randint(30, 130))


def _scalars(run: Path, start: int, steps: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run / "runs" / f"from{start}"))
    for step in range(start, start + steps):
        for source in ("det", "txt"):
            writer.add_scalar(f"train/source/{source}/reward", 0.3 + 0.1 * step, step)
            writer.add_scalar(f"train/source/{source}/accuracy", 0.2 + 0.1 * step, step)
        writer.add_scalar("train/reward/iou_threshold", 0.85 if step < 3 else 0.95, step)
    writer.close()


def tool_transcript(crop_box) -> str:
    """A tool rollout's transcript, as :func:`orsta_trl.rewards.rollout.read_rollout` writes it."""
    call = json.dumps(
        {"name": "crop", "arguments": dict(zip(("x1", "y1", "x2", "y2"), crop_box, strict=True))}
    )
    bad = json.dumps({"name": "crop", "arguments": {"x1": 900, "y1": 900, "x2": 950, "y2": 950}})
    return (
        f"<think>zoom in</think>\n<tool_call>\n{call}\n</tool_call>\n<tool_response>\n<image>crop 200x120\n"
        f"</tool_response>\n\n<tool_call>\n{bad}\n</tool_call>\n<tool_response>\nError: the box lies outside\n"
        "</tool_response>\n<answer>42.0</answer>"
    )
