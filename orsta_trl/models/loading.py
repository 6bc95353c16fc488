"""Loading the policy and its processor, with one source of truth for pixel bounds and a frozen vision tower.

* :func:`load_processor` applies the recipe's ``min_pixels``/``max_pixels`` to the image (and video) processor
  and forces left padding: Qwen2.5-VL's M-RoPE position ids silently misalign with right padding, and TRL only
  forces it when it loads the processor itself.
* :func:`model_view` is for colocated vLLM, which re-loads the processor from the model's directory and
  re-processes the raw images (TRL #6401, #6294): it builds a folder of symbolic links to the model's files with
  a ``preprocessor_config.json`` that carries the recipe's bounds, so trainer and vLLM resize identically.
* :func:`freeze_vision` sets ``requires_grad_(False)`` on the vision tower (and, optionally, on the merger)
  before the optimizer exists; TRL has no option for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def is_vision_model(model_name_or_path: str) -> bool:
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(model_name_or_path), "vision_config", None) is not None


def set_pixel_bounds(processor, min_pixels: int, max_pixels: int):
    """Rebuild the processor's image and video processors with the given bounds (a fresh size dict each)."""
    for attribute in ("image_processor", "video_processor"):
        sub = getattr(processor, attribute, None)
        if sub is None:
            continue
        config = sub.to_dict()
        config["size"] = {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)}
        config.pop("min_pixels", None)
        config.pop("max_pixels", None)
        fresh = type(sub).from_dict(config)
        if hasattr(fresh, "min_pixels") or hasattr(sub, "min_pixels"):
            fresh.min_pixels, fresh.max_pixels = int(min_pixels), int(max_pixels)
        setattr(processor, attribute, fresh)
    return processor


def load_processor(
    model_name_or_path: str,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    vision: bool = True,
):
    """The processor (vision models) or tokenizer (text models), left-padded, with the recipe's pixel bounds."""
    from transformers import AutoProcessor, AutoTokenizer

    if vision:
        processor = AutoProcessor.from_pretrained(
            model_name_or_path, padding_side="left", truncation_side="left"
        )
        if min_pixels is not None and max_pixels is not None:
            set_pixel_bounds(processor, min_pixels, max_pixels)
        enforce_left_padding(processor)
        return processor
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, padding_side="left", truncation_side="left")
    enforce_left_padding(tokenizer)
    return tokenizer


def enforce_left_padding(processing_class) -> None:
    """Left padding on the processor and its tokenizer, whatever the user passed."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    tokenizer.padding_side = "left"
    if hasattr(processing_class, "padding_side"):
        processing_class.padding_side = "left"


def load_model(
    model_name_or_path: str,
    *,
    vision: bool,
    dtype: str | None = None,
    attn_implementation=None,
    revision: str | None = None,
    **kwargs,
):
    """The policy from a folder or hub id; ``kwargs`` go to ``from_pretrained`` (QLoRA's quantization config)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs = {"revision": revision, **kwargs}
    if dtype not in (None, "auto"):
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    elif dtype == "auto":
        kwargs["dtype"] = "auto"
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    cls = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    model = cls.from_pretrained(model_name_or_path, **kwargs)
    mirror_special_ids(model.config)
    return model


def mirror_special_ids(config) -> None:
    """Copy the text config's BOS/EOS/PAD ids to the top level of a vision-language config.

    transformers 5 keeps Qwen2.5-VL's special ids only in ``text_config``, while its ``Trainer`` compares the
    tokenizer's ids with the top-level ones: without this, every run (GRPO and SFT) warns that the tokenizer
    "has new PAD/BOS/EOS tokens" even when they agree. A real disagreement still warns.
    """
    text = getattr(config, "text_config", None)
    if text is None or text is config:
        return
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(config, key, None) is None and hasattr(text, key):
            setattr(config, key, getattr(text, key))


def model_view(model_name_or_path: str, processor, out_dir: str | Path, revision: str | None = None) -> Path:
    """A folder that links to the model's files but holds our processor config (for colocated vLLM).

    The processor is saved first, as real files, and only the model's other files are linked: saving through
    a link would overwrite the user's model folder. The view is rebuilt on every run.
    """
    import shutil

    source = Path(model_name_or_path)
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        source = Path(snapshot_download(model_name_or_path, revision=revision))
    view = Path(out_dir)
    marker = view / "ORSTA_VIEW.json"
    if view.exists():
        if not marker.exists():
            raise FileExistsError(f"{view} exists and is not a model view made by orsta-trl; not touching it")
        shutil.rmtree(view)
    view.mkdir(parents=True)
    processor.save_pretrained(view)
    for item in source.iterdir():
        link = view / item.name
        if not link.exists():
            os.symlink(item.resolve(), link)
    marker.write_text(json.dumps({"source": str(source)}) + "\n")
    return view


def vision_module(model):
    """The vision tower of a Qwen2.5-VL-like model (also through PEFT and DDP wrappers), or None."""
    for name, module in model.named_modules():
        if name == "visual" or name.endswith(".visual"):
            return module
    return None


def freeze_vision(model, *, freeze_merger: bool = True) -> int:
    """Freeze the vision tower (and its merger unless ``freeze_merger`` is False); return parameters frozen."""
    visual = vision_module(model)
    if visual is None:
        return 0
    frozen = 0
    for name, parameter in visual.named_parameters():
        if not freeze_merger and (name == "merger" or name.startswith("merger.")):
            continue
        if parameter.requires_grad:
            frozen += full_numel(parameter)
        parameter.requires_grad_(False)
    return frozen


def full_numel(parameter) -> int:
    """The parameter's full size, also under ZeRO-3, where each rank holds a shard and ``numel()`` is 0: DeepSpeed
    keeps the real size in ``ds_numel``."""
    return int(getattr(parameter, "ds_numel", parameter.numel()))


def parameter_counts(model) -> dict[str, int]:
    """Total, trainable and frozen parameters, and how many of them sit in the vision tower."""
    visual = vision_module(model)
    vision_ids = {id(p) for p in visual.parameters()} if visual is not None else set()
    counts = {"total": 0, "trainable": 0, "frozen": 0, "vision": 0, "vision_trainable": 0}
    for parameter in model.parameters():
        n = full_numel(parameter)
        counts["total"] += n
        counts["trainable" if parameter.requires_grad else "frozen"] += n
        if id(parameter) in vision_ids:
            counts["vision"] += n
            counts["vision_trainable"] += n if parameter.requires_grad else 0
    return counts


def format_counts(counts: dict[str, int]) -> str:
    def m(n):
        return f"{n / 1e6:,.2f} M" if n < 1e9 else f"{n / 1e9:,.3f} B"

    return (
        f"parameters: {m(counts['total'])} total, {m(counts['trainable'])} trainable, "
        f"{m(counts['frozen'])} frozen (vision tower {m(counts['vision'])}, "
        f"{m(counts['vision_trainable'])} of it trainable)"
    )
