"""Where a model reference points: a local folder, or a hub id worth asking the network about.

``from_pretrained("demo/tiny-vll")`` treats a missing folder as a hub id and retries the network for about 25 s
before "couldn't connect". A name is taken as a local path, and a missing one fails at once with the nearest
existing folders suggested, when it starts with ``.``, ``/`` or ``~``, has other than exactly one ``/`` (a legacy
hub id without its org, ``gpt2``, is read as a folder: the error says to write ``openai-community/gpt2``), when its
first part exists here (``demo/`` of ``demo/tiny-vll``), or when the hub is offline (``HF_HUB_OFFLINE``).

A LoRA checkpoint stores its base as written at training time (often a relative path such as ``demo/tiny-vl``):
:func:`adapter_base` resolves it relative to the working folder, then to the checkpoint's own folders, and names
it in the error when neither holds it.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from orsta_trl.errors import MissingFileError


def hub_offline() -> bool:
    """Whether the hub is switched off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` set to a true value)."""
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def is_local_reference(name: str, *, offline_counts: bool = True) -> bool:
    """Whether ``name`` can only mean a folder here (see the module docstring). ``offline_counts=False`` leaves a
    hub-shaped id to the hub even while it is offline: a recipe checked here may be meant for another machine."""
    if name.startswith((".", "/", "~")) or name.count("/") != 1 or (offline_counts and hub_offline()):
        return True
    return Path(name.split("/", 1)[0]).expanduser().is_dir()


def _in_hub_cache(name: str) -> bool:
    """Whether a hub id's config is in the local hub cache (usable offline)."""
    if name.count("/") > 1 or name.startswith((".", "/", "~")):  # `gpt2` (legacy, no org) may be cached
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the hub library rejects is not cached
        return False


def nearest_folders(name: str, n: int = 3) -> list[str]:
    """Existing folders whose path is closest to ``name`` (siblings of its deepest existing parent)."""
    path = Path(name).expanduser()
    parent = next((p for p in path.parents if p.is_dir()), Path("."))
    siblings = [p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    names = {str(p) if str(parent) != "." else p.name: p for p in siblings}
    return difflib.get_close_matches(str(path), list(names), n=n, cutoff=0.5)


def missing_model_message(name: str, *, offline_counts: bool = True) -> str | None:
    """Why ``name`` is not a usable model reference here (None when it is a model folder or may be a hub id).
    ``offline_counts=False``: an uncached hub id is not a problem while the hub is offline (``check-recipe``)."""
    path = Path(name).expanduser()
    if path.exists():
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return None
        return f"{name} has no config.json (is it a model folder?)"
    if not is_local_reference(name, offline_counts=offline_counts) or _in_hub_cache(name):
        return None
    near = nearest_folders(name)
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    why = " (the hub is offline)" if hub_offline() and name.count("/") == 1 else ""
    if "/" not in name and not name.startswith((".", "~")):  # `gpt2`: a legacy hub id without its org
        why += "; a hub id is written org/name: gpt2 is openai-community/gpt2 on the hub"
    return f"no such folder {name} (relative paths start at {Path.cwd()}){why}{hint}"


def check_model(name: str, *, what: str = "model") -> str:
    """``name`` unchanged when it is a model folder or may be a hub id; otherwise a `MissingFileError` at once."""
    problem = missing_model_message(str(name))
    if problem:
        raise MissingFileError(f"{what}: {problem}")
    return str(name)


def adapter_base(checkpoint: str | Path) -> str:
    """The base model of a LoRA checkpoint, found relative to the working folder or to the checkpoint.

    Raises:
        MissingFileError: naming the checkpoint and its stored base when no folder holds it (and it is no hub id).
    """
    folder = Path(checkpoint)
    base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
    if (Path(base).expanduser() / "config.json").is_file() or Path(base).is_absolute():
        return check_model(base, what=f"{folder}: its base model")
    resolved = folder.resolve()
    for anchor in (resolved, *resolved.parents):  # saved relative to the training run's working folder
        if (anchor / base / "config.json").is_file():
            return str(anchor / base)
    first = Path(base).parts[0] if Path(base).parts else base
    local_there = any((anchor / first).is_dir() for anchor in (resolved, *resolved.parents))
    problem = missing_model_message(base)
    if problem is None and not local_there:
        return base  # a hub id
    problem = problem or f"no such folder {base} (its first part {first}/ is a folder beside the checkpoint)"
    raise MissingFileError(
        f"{folder}: its base model {base!r} (adapter_config.json's base_model_name_or_path) is not found from "
        f"{Path.cwd()} nor from the checkpoint's folders: {problem}. Run from the training's working folder, "
        "or pass the base explicitly (--base for merge)"
    )
