"""Parameter counts and shapes of a model built on the meta device (no weights): what memory planning needs.

A local folder is read through its ``config.json``; a hub name through the shipped sizes of
:mod:`orsta_trl.models.known_configs` (nothing is downloaded). LoRA parameters are counted as PEFT adds them
(rank x (in + out) per adapted linear layer), on the language model only: ``OrstaGRPOTrainer`` freezes the
vision tower after PEFT, so adapters there would not train.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orsta_trl.errors import RecipeError
from orsta_trl.models.known_configs import KNOWN, known_config


@dataclass(frozen=True)
class ModelSizes:
    """Parameter counts and the shapes that size activations and the KV cache."""

    name: str
    total: int
    vision: int
    merger: int
    lora: int  # LoRA parameters for the recipe's rank and target modules
    hidden: int
    layers: int
    vocab: int
    kv_per_token: int  # KV-cache elements per token (all layers, K and V)
    vision_hidden: int
    vision_layers: int
    #: parameters of the largest single module (its own, not its children's: the embedding or output head),
    #: which ZeRO-3 gathers whole; counted as DeepSpeed's ``estimate_zero3_model_states_mem_needs_all_live``
    largest_layer: int = 0


def _config(name: str):
    from transformers import AutoConfig

    if Path(name).is_dir():
        return AutoConfig.from_pretrained(name)
    config = known_config(name)
    if config is None:
        raise RecipeError(
            f"model_name_or_path: {name!r} is neither a local folder nor a known hub model "
            f"({', '.join(sorted(KNOWN))}); point it at a folder with config.json"
        )
    return config


def model_sizes(name: str, lora_r: int = 16, lora_targets: list[str] | None = None) -> ModelSizes:
    """Build ``name`` on the meta device and count its parameters.

    Args:
        name: a local model folder or a known hub name.
        lora_r: LoRA rank.
        lora_targets: linear-layer names LoRA adapts in the language model, or ``all-linear`` (default: the
            projections training adapts, :data:`orsta_trl.models.lora.PROJECTIONS`).

    Returns:
        :class:`ModelSizes`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    config = _config(name)
    vision = getattr(config, "vision_config", None) is not None
    with torch.device("meta"):
        model = (AutoModelForImageTextToText if vision else AutoModelForCausalLM).from_config(config)
    total = sum(p.numel() for p in model.parameters())
    visual = next((m for n, m in model.named_modules() if n == "visual" or n.endswith(".visual")), None)
    vis = sum(p.numel() for p in visual.parameters()) if visual is not None else 0
    merger = sum(p.numel() for p in visual.merger.parameters()) if hasattr(visual, "merger") else 0
    from orsta_trl.models.lora import PROJECTIONS

    targets = set(lora_targets or PROJECTIONS)  # what training adapts by default (models/lora.py)
    every_linear = "all-linear" in targets  # PEFT's: every linear layer but the output head
    lora = 0
    for module_name, module in model.named_modules():
        in_vision = ".visual" in f".{module_name}"
        leaf = module_name.split(".")[-1]
        if (
            isinstance(module, torch.nn.Linear)
            and not in_vision
            and (leaf in targets or (every_linear and leaf != "lm_head"))
        ):
            lora += lora_r * (module.in_features + module.out_features)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    text = getattr(config, "text_config", config)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    vc = getattr(config, "vision_config", None)
    return ModelSizes(
        name=name,
        total=total,
        vision=vis,
        merger=merger,
        lora=lora,
        hidden=text.hidden_size,
        layers=text.num_hidden_layers,
        vocab=text.vocab_size,
        kv_per_token=2 * text.num_hidden_layers * text.num_key_value_heads * head_dim,
        vision_hidden=getattr(vc, "hidden_size", 0) if vc is not None else 0,
        vision_layers=getattr(vc, "depth", 0) if vc is not None else 0,
        largest_layer=largest,
    )
