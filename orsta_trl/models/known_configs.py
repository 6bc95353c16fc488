"""Shipped architecture sizes of the hub models our recipes name, so that planning needs no download.

The numbers are those of the models' published ``config.json`` files (Qwen/Qwen2.5-VL-{3B,7B,32B,72B}-Instruct,
Qwen/Qwen2.5-{1.5B,3B,7B}[-Instruct]); only the fields that decide parameter counts and KV-cache size are kept.
Checked here: Qwen2.5-VL-7B builds to 8.29 B parameters, 0.68 B of them in the vision tower
(``tests/test_memory_plan.py``). The 32B and 72B vision towers differ from the 3B/7B one only in their MLP width
(3456 instead of 3420) and output width.
"""

from __future__ import annotations

from typing import Any

_VISION = {"depth": 32, "hidden_size": 1280, "num_heads": 16, "fullatt_block_indexes": [7, 15, 23, 31]}
_VISION |= {"window_size": 112, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}


def _text(hidden, intermediate, layers, heads, kv_heads, vocab, tied) -> dict[str, Any]:
    return {
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }


def _vl(text: dict[str, Any], vision_mlp: int) -> dict[str, Any]:
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
    vision = _VISION | {"intermediate_size": vision_mlp, "out_hidden_size": text["hidden_size"]}
    return {
        "vision": True,
        "text_config": text | {"rope_parameters": rope},
        "vision_config": vision,
        "tie_word_embeddings": text["tie_word_embeddings"],
    }


#: normalised hub name (lower case, no organisation, no ``-instruct``) -> sizes
KNOWN: dict[str, dict[str, Any]] = {
    "qwen2.5-vl-3b": _vl(_text(2048, 11008, 36, 16, 2, 151936, True), 3420),
    "qwen2.5-vl-7b": _vl(_text(3584, 18944, 28, 28, 4, 152064, False), 3420),
    "qwen2.5-vl-32b": _vl(_text(5120, 27648, 64, 40, 8, 152064, False), 3456),
    "qwen2.5-vl-72b": _vl(_text(8192, 29568, 80, 64, 8, 152064, False), 3456),
    "qwen2.5-1.5b": {"vision": False, **_text(1536, 8960, 28, 12, 2, 151936, True)},
    "qwen2.5-3b": {"vision": False, **_text(2048, 11008, 36, 16, 2, 151936, True)},
    "qwen2.5-7b": {"vision": False, **_text(3584, 18944, 28, 28, 4, 152064, False)},
}


def known_key(name: str) -> str:
    """``Qwen/Qwen2.5-VL-7B-Instruct`` -> ``qwen2.5-vl-7b`` (the key of :data:`KNOWN`)."""
    return name.rstrip("/").split("/")[-1].lower().removesuffix("-instruct")


def known_config(name: str):
    """A transformers config for a known hub model name, or None.

    Args:
        name: a hub name such as ``Qwen/Qwen2.5-VL-7B-Instruct``.

    Returns:
        ``Qwen2_5_VLConfig`` or ``Qwen2Config`` with the published sizes, or None for an unknown name.
    """
    sizes = KNOWN.get(known_key(name))
    if sizes is None:
        return None
    sizes = dict(sizes)
    if sizes.pop("vision"):
        from transformers import Qwen2_5_VLConfig

        return Qwen2_5_VLConfig(**sizes)
    from transformers import Qwen2Config

    return Qwen2Config(**sizes)
