"""``crop`` through TRL's tool-image path on the tiny Qwen2.5-VL: a warmed-up model asks for a region of the
record's image, the region comes back as an image in the next turn (and into the training forward), the tool
turn is masked from the loss, and the reward reads the real outcome."""

from __future__ import annotations

import json
import shutil

import torch
from PIL import Image

import orsta_trl
from orsta_trl.api import build_trainer
from orsta_trl.tools.chat import use_tool_template
from orsta_trl.tools.crop import image_tools_factory

QUESTION = "How many red squares? Crop if needed."
CALL = '<think>look closer</think>\n<tool_call>\n{"name": "crop", "arguments": {"x1": 0, "y1": 0, "x2": 56, "y2": 56}}\n</tool_call><|im_end|>'
ANSWER = "<answer>1</answer><|im_end|>"
BOUNDS = {"min_pixels": 3136, "max_pixels": 50176}  # the tiny_vl fixture's


def _warm_up(model_dir, image, steps: int = 120) -> str:
    """Supervised warm-up of prompt → crop call → the crop as an image → answer; returns the tool turn's text.

    Every piece goes through the real processor, and ``mm_token_type_ids`` are passed: without them the
    model's M-RoPE positions differ from those of generation (see the report's notes).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = use_tool_template(AutoProcessor.from_pretrained(model_dir), vision=True)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    env = image_tools_factory(["crop"], **BOUNDS)()
    env.reset(images=[image])
    result = env.crop(0, 0, 56, 56)
    chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = proc.apply_chat_template(chat, tools=[env.crop], tokenize=False, add_generation_prompt=True)
    suffix = (
        "\n<|im_start|>user\n<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>"
        f"{result[1]['text']}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    head = proc(text=[prompt], images=[image], return_tensors="pt")
    tool = proc(text=[suffix], images=[result[0]["image"]], return_tensors="pt")
    call = proc.tokenizer(CALL, add_special_tokens=False)["input_ids"]
    answer = proc.tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    ids = head["input_ids"][0].tolist() + call + tool["input_ids"][0].tolist() + answer
    labels = [-100] * head["input_ids"].shape[1] + call + [-100] * tool["input_ids"].shape[1] + answer
    kinds = head["mm_token_type_ids"][0].tolist() + [0] * len(call) + tool["mm_token_type_ids"][0].tolist()
    batch = {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "mm_token_type_ids": torch.tensor([kinds + [0] * len(answer)]),
        "pixel_values": torch.cat([head["pixel_values"], tool["pixel_values"]]),
        "image_grid_thw": torch.cat([head["image_grid_thw"], tool["image_grid_thw"]]),
    }
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"the warm-up did not converge (loss {loss.item():.3f})"
    model.save_pretrained(model_dir)
    return suffix


def test_crop_returns_the_region_as_an_image_through_trls_tool_image_path(tmp_path, tiny_vl):
    model = tmp_path / "model"
    shutil.copytree(tiny_vl, model)
    image = Image.new("RGB", (112, 112), "white")
    image.paste(Image.new("RGB", (40, 40), "red"), (10, 10))
    image.save(tmp_path / "img.png")
    suffix = _warm_up(model, image)
    rows = [
        {
            "id": f"v{i}",
            "data_source": "zoom",
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
            "images": ["img.png"],
            "reward": {"verifier": "tool", "ground_truth": 1, "params": {"answer_verifier": "count"}},
        }
        for i in range(2)
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = orsta_trl.load_recipe(
        None,
        model_name_or_path=str(model),
        train_files=[str(tmp_path / "d.jsonl")],
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=200,
        temperature=0.3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        max_tool_calling_iterations=2,
        tools=["crop"],
        **BOUNDS,
    )
    trainer = build_trainer(recipe)
    batches, samples = [], []
    generate, update = trainer._generate_and_score_completions, trainer.source_monitor.update
    trainer._generate_and_score_completions = lambda inputs: batches.append(generate(inputs)) or batches[-1]
    trainer.source_monitor.update = lambda rows: (samples.extend(rows), update(rows))[1]
    try:
        trainer.train()
    finally:
        trainer.router.close()
    called = [s for s in samples if s.tools["tool_outcomes"]]
    assert called, "no rollout called the tool"
    for s in called:  # the crop ran, and the answer after it was scored with the real outcome
        assert s.tools == {"tool_outcomes": [True], "tool_names": ["crop"], "turns": 2, "hit_limit": False}
        assert "<tool_response>\n<image>crop 56x56\n</tool_response>" in s.text
        assert s.parts["tool_success"] == 1.0
    assert any(s.accuracy == 1.0 for s in called)
    batch = batches[0]
    # the crops are images of the training forward: one grid per prompt image, plus one per crop (56 px: 4 x 4)
    grids = batch["image_grid_thw"].tolist()
    assert len(grids) == len(samples) + len(called)
    assert grids.count([1, 4, 4]) == len(called)
    tok = trainer._tokenizer
    expanded = suffix.replace("<|image_pad|>", "<|image_pad|>" * 4)  # 16 patches merged 2 x 2
    for ids, mask, keep in zip(
        batch["completion_ids"], batch["tool_mask"], batch["completion_mask"], strict=True
    ):
        ids, mask, keep = ids.tolist(), mask.tolist(), keep.tolist()
        masked = tok.decode([t for t, m, k in zip(ids, mask, keep, strict=True) if k and not m])
        if 0 in mask:  # the tool turn, with the crop's image tokens, is out of the loss; nothing else is
            assert masked.strip() == expanded.strip()
    assert trainer.state.global_step == 1
