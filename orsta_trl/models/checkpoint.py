"""Load a Trainer checkpoint's model weights back into the live model, under the model's own parameter names.

Why this exists (a deviation from transformers 5.17): ``save_pretrained`` writes weights under the
checkpoint's *original* key names (it reverts the model's weight conversion: Qwen2.5-VL's
``model.language_model.layers.*`` become ``model.layers.*``, ``model.visual.*`` become ``visual.*``), but
``Trainer._load_from_checkpoint`` reads them back with a plain ``load_state_dict(strict=False)``. Every key
then misses, only ``lm_head`` is restored, and the "resumed" run silently continues from the *base* weights
with a trained head (transformers issue #43701, open). Here the keys go through the same conversion mapping
that ``from_pretrained`` applies, and a key still missing afterwards is an error, never a warning.

Only renamings are applied; a model whose mapping fuses or splits tensors (``WeightConverter``, e.g. some MoE
layouts) is left to transformers' own loader (:func:`can_load`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


def checkpoint_files(folder: str | Path) -> list[Path]:
    """The safetensors files holding a checkpoint's full model weights (one file, or the shards of an index).

    Args:
        folder: a ``checkpoint-*`` folder.

    Returns:
        The files, or an empty list when the checkpoint holds no full model weights (an adapter, DeepSpeed).
    """
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if (folder / INDEX).is_file():
        shards = sorted(set(json.loads((folder / INDEX).read_text())["weight_map"].values()))
        return [folder / shard for shard in shards]
    return []


def _mapping(model: torch.nn.Module):
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter

    transforms = get_model_conversion_mapping(model)
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    return [t for t in transforms if not isinstance(t, WeightConverter)], converters


def can_load(model: torch.nn.Module, folder: str | Path) -> bool:
    """Whether :func:`load_checkpoint_weights` handles this model and checkpoint (full weights, renamings only).

    Args:
        model: the live model (a transformers ``PreTrainedModel``).
        folder: a ``checkpoint-*`` folder.

    Returns:
        True when the checkpoint holds full safetensors weights and the model's mapping only renames keys.
    """
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel) and bool(checkpoint_files(folder)) and not _mapping(model)[1]


def load_checkpoint_weights(model: torch.nn.Module, folder: str | Path) -> int:
    """Copy a checkpoint's weights into ``model``, renaming the saved keys as ``from_pretrained`` does.

    Args:
        model: the live model, same architecture as the one that wrote the checkpoint.
        folder: a ``checkpoint-*`` folder written by ``Trainer`` (``model.safetensors`` or shards).

    Returns:
        The number of tensors loaded.

    Raises:
        ValueError: a parameter of the model is not in the checkpoint (other than a tied copy of one that is),
            or the checkpoint holds a key the model does not have.
    """
    from safetensors.torch import load_file
    from transformers.core_model_loading import rename_source_key

    renamings, _ = _mapping(model)
    live = model.state_dict(keep_vars=True)
    loaded: dict[str, torch.Tensor] = {}
    for file in checkpoint_files(folder):
        for key, tensor in load_file(str(file), device="cpu").items():
            name, _ = rename_source_key(key, renamings, [], getattr(model, "base_model_prefix", None), live)
            loaded[name] = tensor
    unexpected = sorted(set(loaded) - set(live))
    storages = {live[k].data_ptr() for k in loaded if k in live}
    missing = sorted(k for k in set(live) - set(loaded) if live[k].data_ptr() not in storages)  # tied copies
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {folder} does not fit the model: missing {missing[:5]}{' ...' if len(missing) > 5 else ''}"
            f", unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    model.load_state_dict(loaded, strict=False)
    return len(loaded)


#: Written last into a checkpoint by ``Trainer._save_checkpoint``: a folder without it is incomplete.
COMPLETE_MARKER = "trainer_state.json"


def is_complete(folder: str | Path) -> bool:
    """Whether a ``checkpoint-*`` folder was written to the end (it holds ``trainer_state.json``)."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The ``checkpoint-N`` folder of ``output_dir`` with the largest N that was written to the end.

    transformers' ``get_last_checkpoint`` takes the largest N even when a kill interrupted its writing; a
    resume from it would fail, or start from the model with a stale optimizer.

    Args:
        output_dir: the run's output folder.

    Returns:
        The folder's path, or None when there is none.
    """
    folders = [
        p
        for p in Path(output_dir).glob("checkpoint-*")
        if p.name.split("-", 1)[1].isdigit() and is_complete(p)
    ]
    return str(max(folders, key=lambda p: int(p.name.split("-", 1)[1]))) if folders else None


def previous_run_files(output_dir: str | Path) -> list[str]:
    """What marks ``output_dir`` as holding another run: a saved model or adapter, checkpoints, TensorBoard logs.

    Args:
        output_dir: a run's output folder (it may not exist).

    Returns:
        The names found (at most a few of each kind), empty when a new run may write there.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    marks = [
        name
        for name in ("config.json", "adapter_config.json", WEIGHTS, INDEX, "adapter_model.safetensors")
        if (folder / name).is_file()
    ]
    marks += sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir())[:3]
    logs = sorted({p.parent.name for p in folder.glob("runs/*/events.out.tfevents.*")})
    marks += [f"runs/{name}" for name in logs[:3]]
    return marks


def checkpoint_step(folder: str | Path) -> int:
    """The global step a complete checkpoint was saved at (from its ``trainer_state.json``)."""
    return int(json.loads((Path(folder) / COMPLETE_MARKER).read_text()).get("global_step", 0))
