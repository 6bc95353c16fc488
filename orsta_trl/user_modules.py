"""Import a user's module named in a recipe (``tool_modules``, ``verifier_modules``, ``reward_funcs``).

Python puts a script's own folder first on ``sys.path``; ``orsta-trl`` (a console script) and ``accelerate launch
orsta_trl/train.py`` do not put the user's working folder there, so ``my_pkg`` beside the recipe would not be found.
We resolve user modules the way ``python my_script.py`` run from the working folder would: the working folder first,
then the usual path. The error names every folder tried.

This module sits at the bottom of the layers (it imports nothing from the package but the typed errors), so that
verifiers, tools and the recipe checks can all share it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from orsta_trl.errors import RecipeError


def import_user_module(name: str, *, key: str) -> ModuleType:
    """Import ``name`` with the working folder first on the path, or raise a `RecipeError` naming what was tried.

    Args:
        name: a dotted module name, such as ``my_pkg.rewards``.
        key: the recipe key that named it (used in the error), such as ``tool_modules``.

    Returns:
        The imported module.

    Raises:
        RecipeError: the module is not found in any folder tried, or raised while importing.

    >>> import_user_module("json", key="tool_modules").__name__
    'json'
    """
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        # Importing from the working folder must persist: the module's own imports, pickling of its functions
        # into reward workers and ``importlib.reload`` all look it up again later.
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        parts = name.split(".")
        if exc.name and exc.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            # The module was found but one of *its* imports is missing: say that, not "not found".
            raise RecipeError(
                f"{key}: {name!r} imports {exc.name!r}, which is not installed: {exc}"
            ) from None
        tried = [p or os.getcwd() for p in sys.path if p and Path(p).is_dir()]
        shown = "\n  ".join(tried[:8]) + ("\n  ..." if len(tried) > 8 else "")
        raise RecipeError(
            f"{key}: no module named {name!r} (looked for {name.replace('.', '/')}.py or a package folder in:\n"
            f"  {shown}\n). Run from the folder that holds it, or install it / add its folder to PYTHONPATH."
        ) from None
    except Exception as exc:  # the module's own error while importing
        raise RecipeError(f"{key}: importing {name!r} failed: {type(exc).__name__}: {exc}") from None
