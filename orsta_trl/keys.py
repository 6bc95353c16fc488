"""Nearest-valid-key suggestions, shared by recipes, record fields and verifier params."""

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
