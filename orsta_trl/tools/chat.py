"""Tool-capable chat templates for Qwen2.5-VL and Qwen2.5 text models, and the parser TRL's tool loop uses.

The stock Qwen2.5-VL template cannot render tools (TRL's ``supports_tool_calling`` is False for it), so a
tool-use run swaps in ours (``templates/qwen2_5_vl_tools.jinja``; ``templates/qwen2_5_tools.jinja`` for text
models). Both render Qwen2.5's tool format: tool schemas in the system turn, ``<tool_call>{"name",
"arguments"}</tool_call>`` blocks in the assistant turn, and tool results as ``<tool_response>`` blocks of a user
turn (text, and for the VLM images). Without tools they render exactly as the stock templates, so the tiny
models use them always.

Deviation from TRL: TRL parses Qwen2.5 replies with its Qwen3 response template, which moves ``<think>`` blocks
out of the content into ``reasoning_content``. Ours (:data:`RESPONSE_TEMPLATE`) keeps them in the content: the
ARTIST-style ``tool`` verifier scores the reasoning-before-acting structure of the whole rollout.
"""

from __future__ import annotations

from importlib.resources import files

#: transformers' response template (``tokenizer.parse_response``): ``<tool_call>`` JSON blocks become
#: ``tool_calls``; everything else up to ``<|im_end|>`` stays the content.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


def tool_template(vision: bool) -> str:
    """The Jinja source of our tool-capable template.

    Args:
        vision: True for Qwen2.5-VL (image and video parts), False for Qwen2.5 text models.

    Returns:
        The template text, as shipped in ``orsta_trl/tools/templates/``.
    """
    name = "qwen2_5_vl_tools.jinja" if vision else "qwen2_5_tools.jinja"
    return (files("orsta_trl.tools") / "templates" / name).read_text(encoding="utf-8")


def use_tool_template(processing_class, vision: bool):
    """Give a Qwen2.5(-VL) processor or tokenizer our tool-capable template and its response parser.

    Args:
        processing_class: a ``Qwen2_5_VLProcessor`` or a Qwen2 tokenizer (changed in place).
        vision: whether it is a vision-language processor.

    Returns:
        The same object, whose template renders tools and whose tokenizer parses ``<tool_call>`` blocks.
    """
    template = tool_template(vision)
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    processing_class.chat_template = template
    tokenizer.chat_template = template
    tokenizer.response_template = RESPONSE_TEMPLATE
    return processing_class
