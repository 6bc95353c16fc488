"""Our tool-capable chat templates with the real tiny processor and tokenizer: tool-free chats render exactly as
TRL's copies of the stock Qwen2.5(-VL) templates, TRL accepts them for its tool loop, and a tool conversation
renders and parses back (``<tool_call>`` JSON → ``tool_calls``, tool results with images)."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer
from trl.chat_template_utils import (
    is_chat_template_prefix_preserving,
    parse_response,
    qwen2_5_chat_template,
    qwen2_5_vl_chat_template,
    supports_tool_calling,
)

from orsta_trl.tools.arithmetic import calculator
from orsta_trl.tools.chat import use_tool_template

CHATS = [
    [{"role": "user", "content": "What is 2 + 3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>x</think><answer>1</answer>"},
        {"role": "user", "content": "Again"},
    ],
]
VL_CHATS = [
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count the dots."}]}],
    [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Two:"}, {"type": "image"}, {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ],
]


@pytest.fixture(scope="module")
def processor(tiny_vl):
    return AutoProcessor.from_pretrained(tiny_vl)


@pytest.fixture(scope="module")
def tokenizer(tiny_lm):
    return AutoTokenizer.from_pretrained(tiny_lm)


@pytest.mark.parametrize("generation", [True, False])
def test_tool_free_chats_render_as_the_stock_templates(processor, tokenizer, generation):
    for chat in CHATS:
        ours = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation)
        stock = tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=generation, chat_template=qwen2_5_chat_template
        )
        assert ours == stock
    for chat in VL_CHATS + CHATS:
        ours = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation)
        stock = processor.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=generation, chat_template=qwen2_5_vl_chat_template
        )
        assert ours == stock


def test_trl_accepts_them_for_its_tool_loop(processor, tokenizer):
    # the stock Qwen2.5-VL template cannot call tools; ours can, and is prefix-preserving (no training swap)
    processor.chat_template = qwen2_5_vl_chat_template
    assert not supports_tool_calling(processor)
    use_tool_template(processor, vision=True)
    use_tool_template(tokenizer, vision=False)
    for pc in (processor, tokenizer):
        assert supports_tool_calling(pc) and is_chat_template_prefix_preserving(pc)


@pytest.mark.parametrize("vision", [True, False])
def test_render_and_parse_round_trip(processor, tokenizer, vision):
    pc = use_tool_template(processor if vision else tokenizer, vision=vision)
    tok = getattr(pc, "tokenizer", pc)
    call = {"type": "function", "function": {"name": "calculator", "arguments": {"expression": "2+3"}}}
    chat = [{"role": "user", "content": "2+3?"}]
    prompt = pc.apply_chat_template(chat, tools=[calculator], tokenize=False, add_generation_prompt=True)
    schema = json.dumps({"type": "function", "function": {"name": "calculator"}})[:40]
    assert "# Tools" in prompt and schema in prompt and '"expression"' in prompt
    # the assistant turn as the template renders it parses back to the same call (and keeps <think>)
    turn = pc.apply_chat_template(
        chat + [{"role": "assistant", "content": "<think>add</think>", "tool_calls": [call]}],
        tools=[calculator],
        tokenize=False,
    )[len(prompt) :]
    assert (
        turn
        == '<think>add</think>\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call><|im_end|>\n'
    )
    ids = tok(turn.rstrip("\n"), add_special_tokens=False)["input_ids"]
    parsed = parse_response(tok, ids, prefix=tok(prompt)["input_ids"], tools=[calculator])
    assert parsed["tool_calls"] == [call] and parsed["content"] == "<think>add</think>"
    # a malformed call is left as text: no call runs
    bad = tok('<tool_call>{"name": </tool_call><|im_end|>', add_special_tokens=False)["input_ids"]
    assert "tool_calls" not in parse_response(tok, bad, prefix=tok(prompt)["input_ids"], tools=[calculator])
    # the tool result comes back as a user turn of <tool_response> blocks
    full = pc.apply_chat_template(
        chat
        + [{"role": "assistant", "content": "", "tool_calls": [call, call]}]
        + [{"role": "tool", "name": "calculator", "content": "5"}] * 2,
        tools=[calculator],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert full.endswith(
        "<|im_start|>assistant\n<tool_call>\n"
        + '{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>\n<tool_call>\n'
        + '{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call><|im_end|>\n'
        + "<|im_start|>user\n<tool_response>\n5\n</tool_response>\n<tool_response>\n5\n</tool_response><|im_end|>\n"
        + "<|im_start|>assistant\n"
    )


def test_an_image_tool_result_becomes_image_tokens_for_the_vlm(processor):
    use_tool_template(processor, vision=True)
    call = {
        "type": "function",
        "function": {"name": "crop", "arguments": {"x1": 0, "y1": 0, "x2": 56, "y2": 56}},
    }
    crop = Image.new("RGB", (56, 56), "red")
    chat = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": Image.new("RGB", (112, 112))},
                {"type": "text", "text": "?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": ""}], "tool_calls": [call]},
        {
            "role": "tool",
            "name": "crop",
            "content": [{"type": "image", "image": crop}, {"type": "text", "text": "crop 56x56"}],
        },
    ]
    text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert "<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>crop 56x56\n</tool_response>" in text
    batch = processor.apply_chat_template(chat, tokenize=True, return_dict=True, add_generation_prompt=True)
    assert batch["image_grid_thw"].shape[0] == 2  # the crop is processed as the second image
