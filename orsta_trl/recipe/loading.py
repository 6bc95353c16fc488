"""Reading a recipe: flat YAML (1.2 booleans), command-line overrides, keys routed to the config that owns them.

``load_recipe("recipes/det_7b.yaml", ["--learning_rate", "2e-6"])`` returns a :class:`Recipe` with the three
dataclasses filled in. Every problem is collected and reported in one :class:`RecipeError`: unknown keys (with
the nearest valid key), values of the wrong type, and the value checks of :mod:`orsta_trl.recipe.checks`.
``check=True`` validates a recipe meant for GPUs on a machine without one: settings that TrainingArguments
checks against the hardware (bf16/fp16) are validated as booleans and then restored.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from orsta_trl.errors import RecipeError
from orsta_trl.keys import unknown_key_message
from orsta_trl.recipe.checks import RecipeProblems, library_problems
from orsta_trl.recipe.settings import OrstaConfig, Recipe


class _Yaml12Loader(yaml.SafeLoader):
    """YAML with 1.2 booleans: only true/false, so ``save_strategy: no`` stays the string "no"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader subclass)


def recipe_fields() -> dict[str, list[type]]:
    """Every valid recipe key and the dataclasses that own it."""
    from trl import GRPOConfig, ModelConfig

    owners: dict[str, list[type]] = {}
    for cls in (GRPOConfig, ModelConfig, OrstaConfig):
        for f in dataclasses.fields(cls):
            if f.init:
                owners.setdefault(f.name, []).append(cls)
    return owners


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """``["--lr", "1e-6", "--use_vllm", "false"]`` → ``{"lr": 1e-6, "use_vllm": False}`` (values read as YAML)."""
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise RecipeError(f"expected --key value after the recipe path, got {token!r}")
        key, eq, value = token[2:].partition("=")
        if not key:
            raise RecipeError(f"expected --key value, got {token!r} (no key)")
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                value = "true"  # a bare flag
            else:
                i += 1
                value = argv[i]
        overrides[key.replace("-", "_")] = read_yaml(value) if value != "" else ""
        i += 1
    return overrides


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """The keys and values of a YAML recipe; RecipeError when it cannot be read or is not a flat mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
    try:
        loaded = read_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise RecipeError(f"{path}: a recipe is a flat mapping of keys to values")
    return loaded


def load_recipe(
    path: str | Path | None = None,
    overrides: list[str] | dict | None = None,
    *,
    check: bool = False,
    **keys: Any,
) -> Recipe:
    """Read a YAML recipe (or none), apply overrides, and build the three configs.

    Args:
        path: a flat YAML recipe, or None for TRL's and our defaults.
        overrides: ``["--key", "value", ...]`` as on the command line, or a dict of recipe keys.
        check: validate a GPU recipe on a machine without one (bf16/fp16 are checked as booleans only).
        **keys: more recipe keys as keyword arguments; they win over ``overrides`` and the file.

    Returns:
        A :class:`Recipe` with ``grpo`` (TRL's GRPOConfig), ``model`` (ModelConfig) and ``orsta``
        (:class:`OrstaConfig`).

    Raises:
        RecipeError: every unknown key (with the nearest valid one), value of the wrong type and value out of
        range, all in one message; or a file that cannot be read.

    >>> recipe = load_recipe(None, max_steps=3, use_cpu=True, bf16=False, output_dir="/tmp/orsta-doc")
    >>> recipe.grpo.max_steps, recipe.orsta.freeze_vision
    (3, True)
    """
    values: dict[str, Any] = dict(read_recipe_file(path)) if path is not None else {}
    from_command_line = isinstance(overrides, list)
    if from_command_line:
        overrides = parse_overrides(overrides)
    owners = recipe_fields()
    origin = "command-line override --" if from_command_line else "override "
    for where, given in ((origin, overrides), ("keyword argument ", keys)):
        for key in given or {}:  # a typo here is not the recipe file's: name where it was typed
            if key not in owners:
                raise RecipeError(f"{where}{key}: " + unknown_key_message("recipe key", key, owners))
    values.update(overrides or {})
    values.update(keys)
    return build_recipe(values, path=str(path) if path else None, check=check)


def problem_report(where: str, problems: list[str]) -> RecipeError:
    """One problem on one line; several as a list under a count (``check-recipe`` prints it as it is)."""
    if len(problems) == 1:
        return RecipeError(where + problems[0])
    return RecipeError(f"{where}{len(problems)} problems:\n" + "\n".join(f"  {where}{p}" for p in problems))


def build_recipe(values: dict[str, Any], path: str | None = None, *, check: bool = False) -> Recipe:
    """Route each key to the configs that own it, check every value, and build them; see :func:`load_recipe`."""
    from trl import GRPOConfig, ModelConfig

    owners = recipe_fields()
    where = f"{path}: " if path else ""
    kwargs: dict[type, dict[str, Any]] = {GRPOConfig: {}, ModelConfig: {}, OrstaConfig: {}}
    problems: dict[type | None, list[str]] = {None: [], GRPOConfig: [], ModelConfig: [], OrstaConfig: []}
    for key, value in values.items():
        if key not in owners:
            problems[None].append(unknown_key_message("recipe key", key, owners))
            continue
        for cls in owners[key]:
            try:
                kwargs[cls][key] = _coerce(cls, key, value)
            except TypeError as exc:
                problems[cls].append(str(exc))
    restore = {}
    if check:  # validate a GPU recipe here: TrainingArguments rejects bf16/fp16 without the hardware
        for key in ("bf16", "fp16", "tf32"):
            if key in kwargs[GRPOConfig] or key == "bf16":  # TRL's default is bf16=True
                restore[key] = kwargs[GRPOConfig].get(key, True)
                kwargs[GRPOConfig][key] = False
    kwargs[GRPOConfig].setdefault("output_dir", "runs/orsta")
    problems[GRPOConfig] += library_problems({**kwargs[GRPOConfig], **kwargs[ModelConfig]})
    built: dict[type, Any] = {}
    for cls in (OrstaConfig, ModelConfig, GRPOConfig):
        if cls is not OrstaConfig and (problems[GRPOConfig] or problems[ModelConfig]):
            continue  # TRL's own checks would repeat ours in other words
        try:
            built[cls] = cls(**kwargs[cls])
        except RecipeProblems as exc:
            problems[cls] += exc.problems
        except (TypeError, ValueError) as exc:
            problems[cls].append(str(exc))
    found = list(dict.fromkeys(p for listed in problems.values() for p in listed))
    if found:
        raise problem_report(where, found)
    grpo = built[GRPOConfig]
    for key, value in restore.items():
        setattr(grpo, key, value)
    return Recipe(grpo, built[ModelConfig], built[OrstaConfig], path)


def orsta_config_from(path: str | Path | None) -> OrstaConfig:
    """Only our keys of a recipe (pixel bounds, IoU schedule, ...), for tools that do not train; none: defaults."""
    if path is None:
        return OrstaConfig()
    try:
        values = read_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}") from None
    names = {f.name for f in dataclasses.fields(OrstaConfig)}
    try:
        return OrstaConfig(**{k: v for k, v in values.items() if k in names})
    except RecipeProblems as exc:
        raise problem_report(f"{path}: ", exc.problems) from None
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{path}: {exc}") from None


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _coerce(cls: type, key: str, value: Any) -> Any:
    """Turn YAML's strings for numbers like ``1e-6`` into floats, and check simple scalar types.

    Raises:
        TypeError: ``key: expected int, got True``.
    """
    if key == "resume_from_checkpoint" and isinstance(value, bool):
        return value or None  # TRL's and transformers' "true": the last checkpoint in output_dir
    hints = typing.get_type_hints(cls)
    allowed = _scalar_types(hints.get(key))
    if isinstance(value, str) and (float in allowed or int in allowed) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        value = int(number) if int in allowed and float not in allowed and number.is_integer() else number
    wrong_bool = (
        isinstance(value, bool) and allowed and bool not in allowed
    )  # bool is an int in Python: not here
    if wrong_bool or (allowed and value is not None and not isinstance(value, tuple(allowed))):
        names = " or ".join(sorted(t.__name__ for t in allowed))
        raise TypeError(f"{key}: expected {names}, got {value!r}")
    return value


def _scalar_types(hint) -> set[type]:
    """The plain scalar types a field accepts; empty when the hint is anything richer (then no check)."""
    if hint is None:
        return set()
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    scalars = set()
    for arg in args:
        if arg is type(None):
            continue
        if arg in (bool, int, float, str):
            scalars.add(arg)
        else:
            return set()  # enums, lists, dicts, literals: leave validation to the dataclass
    if float in scalars:
        scalars.add(int)
    return scalars
