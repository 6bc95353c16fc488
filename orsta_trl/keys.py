"""Nearest-valid-key suggestions and "not one of" messages, shared by recipes, record fields, verifier params and
data tools: one wording for every "this name or value is not allowed" error."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(name: str, valid: Iterable[str]) -> str | None:
    """Return the valid key closest to ``name``, or None when nothing is close.

    >>> nearest("learning_rat", ["learning_rate", "beta"])
    'learning_rate'
    """
    matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_key_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """``unknown recipe key 'learning_rat' (did you mean 'learning_rate'?)``."""
    valid = sorted(valid)
    hint = nearest(name, valid)
    if hint is not None:
        return f"unknown {kind} {name!r} (did you mean {hint!r}?)"
    return f"unknown {kind} {name!r} (valid: {', '.join(valid)})"


def not_one_of(value: object, choices: Iterable) -> str:
    """``'dpao' is not one of ['grpo', 'dapo'] (did you mean 'dapo'?)``: a value outside a closed list.

    Args:
        value: the value given.
        choices: the allowed values, in the order to show them.

    Returns:
        The message, with the nearest allowed value when one is close.

    >>> not_one_of("dpao", ["grpo", "dapo"])
    "'dpao' is not one of ['grpo', 'dapo'] (did you mean 'dapo'?)"
    """
    choices = list(choices)
    hint = nearest(str(value), [str(c) for c in choices])
    return f"{value!r} is not one of {choices}" + (f" (did you mean {hint!r}?)" if hint else "")
