"""The tiny offline Qwen2.5-VL / Qwen2 checkpoints load with the Auto classes and run on CPU."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    GenerationConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
)
from trl.chat_template_utils import qwen2_5_chat_template, qwen2_5_vl_chat_template

from orsta_trl.models.loading import parameter_counts
from orsta_trl.models.tiny import SPECIAL_TOKENS, make_tiny_lm, make_tiny_vl
from orsta_trl.tools.chat import tool_template

MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 64
PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]


def _circles(w: int = 112, h: int = 84) -> Image.Image:
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    for x in (10, 45, 80):
        draw.ellipse((x, 30, x + 20, 50), fill="red")
    return img


def test_tiny_vl_reloads_with_real_classes(tmp_path):
    out = make_tiny_vl(tmp_path / "vl", min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    assert out == tmp_path / "vl"
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    assert model.dtype == torch.float32

    tok = processor.tokenizer
    assert tok.padding_side == "left"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert len(tok) == model.config.text_config.vocab_size
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    assert list(ids.values()) == list(range(ids["<|endoftext|>"], ids["<|endoftext|>"] + len(SPECIAL_TOKENS)))
    assert model.config.image_token_id == ids["<|image_pad|>"] == processor.image_token_id
    assert model.config.video_token_id == ids["<|video_pad|>"]
    assert model.config.vision_start_token_id == ids["<|vision_start|>"]
    assert model.config.vision_end_token_id == ids["<|vision_end|>"]
    assert model.config.text_config.eos_token_id == ids["<|im_end|>"]
    assert model.config.text_config.pad_token_id == ids["<|endoftext|>"]

    gen = GenerationConfig.from_pretrained(out)
    assert ids["<|im_end|>"] in gen.eos_token_id and ids["<|endoftext|>"] in gen.eos_token_id
    assert gen.pad_token_id == ids["<|endoftext|>"]
    assert model.generation_config.eos_token_id == gen.eos_token_id

    for proc in (processor.image_processor, processor.video_processor):
        assert proc.size["shortest_edge"] == MIN_PIXELS and proc.size["longest_edge"] == MAX_PIXELS
    # transformers 5 folds min/max_pixels into `size` on load; the json still carries both spellings
    saved = json.loads((out / "processor_config.json").read_text())["image_processor"]
    assert (saved["min_pixels"], saved["max_pixels"]) == (MIN_PIXELS, MAX_PIXELS)
    # our tool-capable template, which renders tool-free chats exactly as TRL's copy of the stock template
    # (tests/test_tool_chat.py compares them)
    assert processor.chat_template == tok.chat_template == tool_template(vision=True)
    assert qwen2_5_vl_chat_template != tool_template(vision=True)


def test_tiny_vl_chat_template_forward_generate(tmp_path):
    out = make_tiny_vl(tmp_path / "vl")
    processor = AutoProcessor.from_pretrained(out)
    model = AutoModelForImageTextToText.from_pretrained(out).eval()

    # transformers 5: the image goes inside the content block (no `images=` kwarg here)
    prompt = [{"role": "user", "content": [{"type": "image", "image": _circles()}, PROMPT[0]["content"][1]]}]
    inputs = processor.apply_chat_template(
        prompt,
        tokenize=True,
        return_dict=True,
        add_generation_prompt=True,
        return_tensors="pt",
    )
    assert "pixel_values" in inputs and "image_grid_thw" in inputs
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert (t, h, w) == (1, 6, 8)  # 112x84 already fits [min, max] pixels: 84/14 x 112/14 patches
    n_pad = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == t * h * w // 4
    assert inputs["pixel_values"].shape == (t * h * w, 3 * 2 * 14 * 14)
    text = processor.decode(inputs["input_ids"][0])
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "How many circles?<|im_end|>" in text

    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()

    # batched, left-padded, two images of different sizes
    prompts = [processor.apply_chat_template(PROMPT, add_generation_prompt=True)] * 2
    batch = processor(
        text=prompts, images=[[_circles()], [_circles(56, 140)]], padding=True, return_tensors="pt"
    )
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padding
    gen = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert gen.shape[0] == 2 and 0 < gen.shape[1] - batch["input_ids"].shape[1] <= 5


def test_tiny_vl_is_deterministic(tmp_path):
    a = make_tiny_vl(tmp_path / "a", seed=3)
    b = make_tiny_vl(tmp_path / "b", seed=3)
    c = make_tiny_vl(tmp_path / "c", seed=4)
    sa, sb, sc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(v.dtype == torch.float32 for v in sa.values())
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes() == (c / name).read_bytes()


def test_parameter_counts_split_vision_and_language(tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(make_tiny_vl(tmp_path / "vl"))
    counts = parameter_counts(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["vision"] == sum(p.numel() for p in model.model.visual.parameters()) > 0
    assert counts["total"] - counts["vision"] > 0
    assert counts["trainable"] == counts["total"] and counts["frozen"] == 0
    assert counts["vision_trainable"] == counts["vision"]

    model.model.visual.requires_grad_(False)
    counts = parameter_counts(model)
    assert counts["frozen"] == counts["vision"] and counts["vision_trainable"] == 0
    assert counts["trainable"] == counts["total"] - counts["vision"]


def test_tiny_lm_chat_template_and_generate(tmp_path):
    out = make_tiny_lm(tmp_path / "lm")
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert tok.padding_side == "left"
    assert model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids("<|im_end|>")
    assert parameter_counts(model)["vision"] == 0

    messages = [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "Hi"}]]
    assert tok.chat_template == tool_template(vision=False) != qwen2_5_chat_template
    text = tok.apply_chat_template(messages[0], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is 2 + 3?<|im_end|>" in text
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level BPE round-trips

    batch = tok.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        padding=True,
        return_tensors="pt",
    )
    assert (batch["attention_mask"][:, -1] == 1).all()
    gen = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert gen.shape[0] == 2 and 0 < gen.shape[1] - batch["input_ids"].shape[1] <= 5

    b = make_tiny_lm(tmp_path / "lm2")
    assert (out / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    sa, sb = load_file(out / "model.safetensors"), load_file(b / "model.safetensors")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("vision", [True, False], ids=["vl", "lm"])
def test_trainer_finds_the_tiny_models_special_tokens_aligned(tiny_vl, tiny_lm, vision):
    """transformers' Trainer compares the tokenizer's PAD/BOS/EOS with the model's configs and warns on a
    difference; the tiny models' configs (as loaded for training) agree with their tokenizer."""
    import logging

    from transformers import AutoProcessor, AutoTokenizer
    from transformers.trainer_utils import align_special_tokens

    from orsta_trl.models.loading import load_model

    path = str(tiny_vl if vision else tiny_lm)
    model = load_model(path, vision=vision)
    processing = AutoProcessor.from_pretrained(path) if vision else AutoTokenizer.from_pretrained(path)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.trainer_utils")
    logger.addHandler(handler)
    try:
        align_special_tokens(model, processing)
    finally:
        logger.removeHandler(handler)
    assert not [r.getMessage() for r in records if "PAD/BOS/EOS" in r.getMessage()]
    assert model.generation_config.bos_token_id is None and model.config.eos_token_id == processing_eos(
        processing
    )


def processing_eos(processing) -> int:
    return getattr(processing, "tokenizer", processing).eos_token_id
