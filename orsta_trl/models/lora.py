"""LoRA with defaults that do the right thing for Qwen2.5-VL and for text models, QLoRA checks, adapter merging.

TRL's ``get_peft_config`` passes ``lora_target_modules`` through as given, so ``use_peft: true`` alone fails
after the model has loaded (PEFT: "Please specify target_modules"), and ``all-linear`` or MLP names also adapt
Qwen2.5-VL's vision tower, whose MLP shares the names ``gate_proj/up_proj/down_proj`` with the language model.
:func:`lora_config` differs from TRL in two ways:

* no targets given: the attention and MLP projections of the language model (:data:`PROJECTIONS`);
* a vision model with a frozen vision tower: ``exclude_modules`` keeps every adapter out of ``visual.*``
  (out of ``visual.*`` except the merger when only the tower is frozen), whatever the targets, ``all-linear``
  included.

QLoRA (``load_in_4bit`` / ``load_in_8bit``) needs bitsandbytes and a CUDA GPU: :func:`check_quantization`
says so before the model loads. :func:`merge_adapter` folds a saved adapter into its base and writes full
weights with the processor, loadable with ``from_pretrained``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from orsta_trl.errors import MissingFileError, RecipeError

#: The projections adapted by default: attention and MLP of each decoder layer (Qwen2 / Qwen2.5-VL names).
PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: PEFT ``exclude_modules`` (a full-match regex over module names): the whole vision tower, or all but its merger.
EXCLUDE_VISION = r"(.*\.)?visual(\..*)?"
EXCLUDE_VISION_BUT_MERGER = r"(.*\.)?visual(\.(?!merger(\.|$)).*)?"


def lora_config(model_args, *, vision: bool, freeze_vision: bool = True, freeze_merger: bool = True):
    """The PEFT ``LoraConfig`` of a recipe's ModelConfig keys, or None without ``use_peft``.

    Args:
        model_args: TRL's ``ModelConfig`` (``use_peft``, ``lora_r``, ``lora_alpha``, ``lora_dropout``,
            ``lora_target_modules``, ``lora_target_parameters``, ``lora_modules_to_save``, ...).
        vision: the model has a vision tower (Qwen2.5-VL).
        freeze_vision, freeze_merger: the recipe's keys; a frozen part gets no adapter.

    Returns:
        A ``peft.LoraConfig``, or None when ``use_peft`` is false.
    """
    from trl import get_peft_config

    if not model_args.use_peft:
        return None
    if not model_args.lora_target_modules and model_args.lora_target_parameters is None:
        model_args = dataclasses.replace(model_args, lora_target_modules=list(PROJECTIONS))
    config = get_peft_config(model_args)
    if vision and freeze_vision:
        config.exclude_modules = EXCLUDE_VISION if freeze_merger else EXCLUDE_VISION_BUT_MERGER
    return config


def check_quantization(model_args, where: str = "") -> None:
    """Reject QLoRA (4- or 8-bit loading) before the model loads where it cannot run.

    Args:
        model_args: TRL's ``ModelConfig``.
        where: a prefix for the message (the recipe's path).

    Raises:
        RecipeError: no CUDA GPU, no bitsandbytes, or quantized loading without ``use_peft``.
    """
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return
    key = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit"
    import torch

    if not torch.cuda.is_available():
        raise RecipeError(
            f"{where}{key}: QLoRA loads the model quantized with bitsandbytes, which needs a CUDA GPU, and this "
            "machine has none. Remove the key for plain LoRA (recipes/lora_det_3b.yaml), or run on a GPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RecipeError(f"{where}{key}: QLoRA needs bitsandbytes: `uv pip install bitsandbytes`")
    if not model_args.use_peft:
        raise RecipeError(
            f"{where}{key}: a quantized model can only be trained through adapters: set use_peft"
        )


def quantization_kwargs(model_args) -> dict:
    """``from_pretrained`` keyword arguments of a QLoRA recipe (none otherwise): the bitsandbytes config and
    a device map that puts the whole model on this process's GPU."""
    from trl import get_quantization_config

    config = get_quantization_config(model_args)
    if config is None:
        return {}
    from accelerate import PartialState

    return {"quantization_config": config, "device_map": {"": PartialState().local_process_index}}


def merge_adapter(checkpoint: str | Path, out_dir: str | Path, *, base: str | None = None) -> Path:
    """Fold a LoRA checkpoint into its base model; write full weights and the processor to ``out_dir``.

    Args:
        checkpoint: a folder with ``adapter_config.json`` (a run's output_dir or one of its checkpoints).
        out_dir: where the merged model and its processor are written.
        base: the base model (default: ``base_model_name_or_path`` of the adapter's config).

    Returns:
        ``Path(out_dir)``; load it with ``AutoModelForImageTextToText`` (or ``AutoModelForCausalLM``).

    Raises:
        MissingFileError: the checkpoint holds no adapter, or its base model cannot be found.
    """
    from peft import PeftModel

    from orsta_trl.models.loading import is_vision_model, load_model, load_processor

    path = Path(checkpoint)
    adapter = path / "adapter_config.json"
    if not adapter.is_file():
        raise MissingFileError(f"{path}: no adapter_config.json: not a LoRA checkpoint (nothing to merge)")
    from orsta_trl.models.paths import adapter_base, check_model

    base = check_model(base, what="--base") if base else adapter_base(path)  # relative: to the checkpoint too
    vision = is_vision_model(base)
    model = load_model(base, vision=vision, dtype="auto")
    merged = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    out = Path(out_dir)
    merged.save_pretrained(out)
    has_processor = any((path / f).exists() for f in ("processor_config.json", "tokenizer_config.json"))
    load_processor(str(path) if has_processor else base, vision=vision).save_pretrained(out)
    return out
