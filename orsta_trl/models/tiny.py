"""Tiny random-weight Qwen2.5-VL / Qwen2 checkpoints, built locally in seconds.

The tests, the CPU demo and the smoke recipes need a model + processor with the
*real* classes (``Qwen2_5_VLForConditionalGeneration``, ``Qwen2_5_VLProcessor``,
``Qwen2VLImageProcessor``, ``Qwen2Tokenizer``) and the real chat templates, but
must not touch the Hugging Face Hub. This module builds them from scratch:

* a byte-level BPE tokenizer trained on a small built-in corpus (English, digits,
  JSON boxes, LaTeX, ``<think>``/``<answer>`` tags) followed by the Qwen special
  tokens in Qwen's order, so ``<|im_end|>`` is eos and ``<|endoftext|>`` is pad;
* a 2-layer Qwen2.5-VL (2-block vision tower with window + full attention, M-RoPE)
  or a 2-layer Qwen2 causal LM, random weights from ``torch.manual_seed(seed)``;
* our tool-capable chat templates (:mod:`orsta_trl.tools.chat`), which render tool-free chats exactly as
  the stock ``qwen2_5_vl.jinja`` / ``qwen2_5.jinja`` shipped inside TRL, and can also render tools.

Everything is deterministic: the same seed gives byte-identical tokenizer files
and identical weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from orsta_trl.tools.chat import tool_template

__all__ = ["SPECIAL_TOKENS", "make_tiny_lm", "make_tiny_tokenizer", "make_tiny_vl"]

# Same order as Qwen2.5 (151643 ... 151658); here they follow the BPE vocabulary.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
]  # fmt: skip
_NOT_SPECIAL = {"<tool_call>", "</tool_call>"}  # plain added tokens in Qwen, as here
_BPE_VOCAB_SIZE = 1024  # target size of the trained part (the corpus may stop it a little short)

_CORPUS = r"""You are a helpful assistant. Look at the image and answer the question.
How many circles are in the image? How many red squares are there? Count the objects.
<think>I see three circles and two squares, so the answer is 3.</think> <answer>3</answer>
<think>Let me think step by step. First, find the triangle. Then compare the sizes.</think>
<answer>\boxed{42}</answer> The final answer is \boxed{7}. So the result is $\boxed{\frac{1}{2}}$.
Solve for x: $2x + 3 = 11$, so $x = 4$. Compute $\sqrt{16} + 3^2 = 13$ and $\frac{a}{b} \cdot \pi$.
$\int_0^1 x^2 \, dx = \frac{1}{3}$, $\sum_{i=1}^{n} i = \frac{n(n+1)}{2}$, $\alpha + \beta = 90^\circ$.
Locate the dog. [{"bbox_2d": [12, 34, 156, 178], "label": "dog"}] {"bbox_2d": [0, 0, 100, 200]}
Output the bounding box in JSON format: ```json\n[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}]\n```
{"name": "count", "arguments": {"shape": "circle", "color": "blue"}} {"answer": "A", "score": 0.95}
Which option is correct? A. 12 B. 15 C. 18 D. 21. The correct option is (B). Answer: C
The chart shows sales from 2019 to 2024: 120, 135, 150, 180, 210 and 250 units per year.
Read the text in the image: "STOP", "EXIT", "Open 24 hours", "Total: $19.99", "Tel 555-0123".
The triangle has sides 3, 4 and 5; its area is 6 and its perimeter is 12. Angle ABC is 90 degrees.
Point A is at (10, 20) and point B is at (30, 40); the distance is 28.28. The ratio is 3:4.
Is the object on the left or the right? The red ball is to the left of the green cube.
There are 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 50 64 100 128 256 512 1000 items.
What color is the car? The car is blue. What is written on the sign? What time does the clock show?
The puzzle: move one piece so that each row sums to 15. Row 1: 8 1 6; row 2: 3 5 7; row 3: 4 9 2.
Reward is 1.0 when the answer matches, otherwise 0.0. IoU = area(inter) / area(union) >= 0.5.
<|im_start|>user\nDescribe the picture.<|im_end|>\n<|im_start|>assistant\nA small house by a lake.
The quick brown fox jumps over the lazy dog. A man is riding a bicycle down the street in the rain.
Detection, grounding, counting, OCR, math, science, charts, puzzles: perception and reasoning tasks.
Question: what is the probability of rolling two sixes? Solution: $\frac{1}{6} \times \frac{1}{6} = \frac{1}{36}$.
Physics: a ball falls from height h = 20 m; with g = 9.8 m/s^2 the time is $t = \sqrt{2h/g} \approx 2.02$ s.
Chemistry: water is H2O, carbon dioxide is CO2, and the molar mass of NaCl is 58.44 g/mol.
Biology: the cell membrane, nucleus, mitochondria and chloroplast are shown in the diagram.
Geometry: the circle has radius r = 5, so its area is $\pi r^2 = 25\pi$ and circumference $10\pi$.
Table: | year | revenue | profit |\n| 2022 | 340 | 45 |\n| 2023 | 410 | 62 |. Which year grew fastest?
Please answer with a single word or number. Put your final answer within \boxed{} and reasoning in <think></think>.
Find every person, car, tree, bird and traffic light; return each as {"bbox_2d": [...], "label": "..."}.
True or false: the yellow cylinder is behind the purple sphere. Yes or no? No. Options: (A) yes (B) no.
"""


def make_tiny_tokenizer(*, padding_side: str = "left") -> Qwen2Tokenizer:
    """Train a small byte-level BPE on the built-in corpus and wrap it as a Qwen2 tokenizer.

    The vocabulary is the 256 byte symbols, the learned merges, then ``SPECIAL_TOKENS``
    (in Qwen order). eos is ``<|im_end|>``, pad ``<|endoftext|>``, no bos (as Qwen2.5-Instruct).
    """
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS.splitlines(keepends=True), trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=[t for t in SPECIAL_TOKENS[1:] if t not in _NOT_SPECIAL],
        model_max_length=32768,
        padding_side=padding_side,
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=t not in _NOT_SPECIAL, normalized=False) for t in SPECIAL_TOKENS]
    )
    return tokenizer


def _special_ids(tokenizer: Qwen2Tokenizer) -> dict:
    """The tokenizer's own special ids, for the model config: no BOS (Qwen2.5 has none), ``<|im_end|>`` is eos,
    ``<|endoftext|>`` pad. Configs that agree with the tokenizer keep transformers' Trainer from "aligning" them
    with a PAD/BOS/EOS warning on every run."""
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}  # fmt: skip


def _generation_config(tokenizer: Qwen2Tokenizer) -> GenerationConfig:
    ids = tokenizer.convert_tokens_to_ids
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
        pad_token_id=ids("<|endoftext|>"),
    )


def make_tiny_vl(
    out_dir: str | Path, *, seed: int = 0, min_pixels: int = 28 * 28 * 4, max_pixels: int = 28 * 28 * 64
) -> Path:
    """Build and save a random-weight tiny ``Qwen2_5_VLForConditionalGeneration`` + processor.

    Text: hidden 64, 2 layers, 4 heads (2 kv), head_dim 16, M-RoPE sections [2, 3, 3].
    Vision: depth 2 (block 0 windowed, block 1 full attention), hidden 32, merger to 64.

    Args:
        out_dir: the folder to write (created when missing).
        seed: the weights' seed; the same seed gives identical files.
        min_pixels, max_pixels: the processor's bounds, for both images and videos.

    Returns:
        ``Path(out_dir)``; reload with ``AutoProcessor``/``AutoModelForImageTextToText``.
    """
    out = Path(out_dir)
    tokenizer = make_tiny_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_window_layers": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
        **_special_ids(tokenizer),
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 64,
        "fullatt_block_indexes": [1],
        "window_size": 112,
        "tokens_per_second": 2,
    }
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
        **_special_ids(tokenizer),  # also at the top level, where transformers' Trainer compares them
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out)

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = Qwen2VLImageProcessor(size=dict(size))
    video_processor = Qwen2VLVideoProcessor(size=dict(size))
    for proc in (image_processor, video_processor):
        proc.min_pixels, proc.max_pixels = min_pixels, max_pixels
    template = tool_template(vision=True)  # renders as TRL's qwen2_5_vl.jinja, and can render tools
    tokenizer.chat_template = template
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=template,
    )
    processor.save_pretrained(out)
    return out


def make_tiny_lm(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Build and save a random-weight tiny text-only ``Qwen2ForCausalLM`` + tokenizer.

    Same tokenizer as :func:`make_tiny_vl`, Qwen2.5 ChatML template (from TRL), left padding,
    hidden 64, 2 layers, 4 heads (2 kv), tied embeddings like Qwen2.5-0.5B.

    Args:
        out_dir: the folder to write (created when missing).
        seed: the weights' seed.

    Returns:
        ``Path(out_dir)``.
    """
    out = Path(out_dir)
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = tool_template(vision=False)  # renders as TRL's qwen2_5.jinja
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_window_layers=2,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=True,
        **_special_ids(tokenizer),
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
