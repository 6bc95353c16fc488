"""The recipe's paths on this machine: the model folder, the data files, the output folder and the checkpoint.

:func:`path_problems` lists what is wrong with the local paths (``orsta-trl check-recipe`` prints them all; hub
names are left to the hub); :func:`check_paths` is training's stricter check before anything loads (writable
output folder, no other run in it, a complete checkpoint to resume from).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orsta_trl.errors import RecipeError


def path_problems(recipe: Any, *, files: bool = True, here: bool = True) -> list[str]:
    """The recipe's local paths: the model folder, the output folder's place, and (``files``) every train and
    eval file. Hub names (``org/name``, ``org/name[:split]``) are left to the hub, as training does.

    Args:
        recipe: a loaded :class:`~orsta_trl.recipe.Recipe`.
        files: also check ``train_files`` (``datasets``' paths) and ``eval_datasets``.
        here: the recipe runs on this machine, so a hub id the offline hub cannot serve is a problem; False
            (``check-recipe``) leaves every hub-shaped id to the hub, for a recipe meant for another machine.

    Returns:
        One line per problem, naming the key and the path.
    """
    problems = []
    name = recipe.model.model_name_or_path
    if name:
        from orsta_trl.models.paths import missing_model_message

        problem = missing_model_message(name, offline_counts=here)  # a typo fails now, not after hub retries
        if problem and "has no config.json" in problem:
            problems.append(f"model_name_or_path: {problem}")
        elif problem:
            problems.append(
                f"model_name_or_path: {problem}, and not a hub model id like 'Qwen/Qwen2.5-VL-7B-Instruct'"
            )
    out = Path(recipe.grpo.output_dir)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        problems.append(f"output_dir: {existing} is a file, so {out} cannot be created")
    if files:
        for key in ("train_files", "eval_datasets"):
            for item in getattr(recipe.orsta, key):
                if isinstance(item, str) and not _dataset_exists(item):
                    problems.append(
                        f"{key}: {item}: no such file (relative paths start at {Path.cwd()}), "
                        "and not a hub dataset name like 'org/name[:split]'"
                    )
    return problems


def _dataset_exists(item: str) -> bool:
    """A file that exists, or a name that can only be a hub dataset (``org/name[:split]``, no file suffix)."""
    if Path(item).expanduser().exists():
        return True
    name = item.partition(":")[0]
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and Path(name).suffix not in (
        ".jsonl", ".json", ".parquet",
    )  # fmt: skip


def check_paths(recipe: Any) -> None:
    """The recipe's paths, checked before anything loads: the model, the output folder, the checkpoint.

    ``resume_from_checkpoint: true`` is resolved here to the last ``checkpoint-*`` folder of ``output_dir``.

    Raises:
        RecipeError: naming the key, the path and what to change.
    """
    grpo, orsta, where = recipe.grpo, recipe.orsta, f"{recipe.path}: " if recipe.path else ""
    name = recipe.model.model_name_or_path
    if not name:
        raise RecipeError(f"{where}model_name_or_path is missing: name a model folder or a hub model")
    if not orsta.train_files:
        raise RecipeError(f"{where}train_files is missing: list the dataset files to train on")
    problems = path_problems(recipe, files=False)  # the model folder and the output folder's place
    if problems:
        raise RecipeError(where + problems[0])
    out = Path(grpo.output_dir)
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not os.access(existing, os.W_OK):
        raise RecipeError(f"{where}output_dir: {existing} is not writable")
    from orsta_trl.models.checkpoint import (
        COMPLETE_MARKER,
        is_complete,
        last_complete_checkpoint,
        previous_run_files,
    )

    previous = previous_run_files(out)
    if previous and not grpo.resume_from_checkpoint and not orsta.overwrite_output_dir:
        raise RecipeError(
            f"{where}output_dir: {out} holds another run ({', '.join(previous)}); training there would mix the "
            "two runs' checkpoints and logs. Choose a new output_dir, or set resume_from_checkpoint: true to "
            "continue that run, or overwrite_output_dir: true to train there anyway"
        )

    if grpo.resume_from_checkpoint is True:
        last = last_complete_checkpoint(out) if out.is_dir() else None
        if last is None:
            raise RecipeError(
                f"{where}resume_from_checkpoint: true, but {out} holds no complete checkpoint-* folder"
            )
        grpo.resume_from_checkpoint = last
    elif grpo.resume_from_checkpoint and not Path(grpo.resume_from_checkpoint).is_dir():
        raise RecipeError(f"{where}resume_from_checkpoint: no such folder {grpo.resume_from_checkpoint}")
    elif grpo.resume_from_checkpoint and not is_complete(grpo.resume_from_checkpoint):
        raise RecipeError(
            f"{where}resume_from_checkpoint: {grpo.resume_from_checkpoint} is incomplete (no {COMPLETE_MARKER}: "
            "its writing was interrupted); resume from an earlier checkpoint, or give true for the last complete one"
        )
