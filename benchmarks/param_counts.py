"""Parameter counts: the tiny demo model, and Qwen2.5-VL-7B built from its configuration on the meta device.

    .venv/bin/python benchmarks/param_counts.py

No weights are loaded or downloaded: the 7B configuration is written out here from its published sizes, and
the model is instantiated on the meta device; the vision tower is then frozen exactly as in training.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig  # noqa: E402

from orsta_trl.models.loading import format_counts, freeze_vision, load_model, parameter_counts  # noqa: E402
from orsta_trl.models.tiny import make_tiny_vl  # noqa: E402

QWEN25_VL_7B = {
    "text_config": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 128000,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
        "tie_word_embeddings": False,
    },
    "vision_config": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "window_size": 112,
    },
    "tie_word_embeddings": False,
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tiny = load_model(str(make_tiny_vl(Path(tmp) / "tiny")), vision=True)
        freeze_vision(tiny)
        print(f"tiny Qwen2.5-VL (vision frozen): {format_counts(parameter_counts(tiny))}")
    config = Qwen2_5_VLConfig(**QWEN25_VL_7B)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    freeze_vision(model)
    counts = parameter_counts(model)
    print(f"Qwen2.5-VL-7B on the meta device (vision frozen): {format_counts(counts)}")
    merger = sum(p.numel() for p in model.model.visual.merger.parameters())
    print(
        f"  of which merger {merger / 1e9:.3f} B; language model + lm_head {counts['trainable'] / 1e9:.3f} B"
    )


if __name__ == "__main__":
    main()
