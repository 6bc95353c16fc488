"""The typed errors of the library. Library functions raise these; only the CLI turns them into exit codes.

Every one names what is wrong and what to change: the file and line, the source and record, the key or field.
"""

from __future__ import annotations


class OrstaError(Exception):
    """Base of every error the library raises on purpose (the CLI prints it and exits 1)."""


class RecipeError(OrstaError, ValueError):
    """A recipe key that does not exist, a value that does not fit, or a recipe that cannot run."""


class DataError(OrstaError, ValueError):
    """Data that cannot be used: a bad record, a missing file, completions that name no record."""


class MissingFileError(DataError, FileNotFoundError):
    """A file or folder the command needs does not exist (a dataset, a run directory, its event files)."""


class NotReady(OrstaError, RuntimeError):
    """A verifier cannot score at all (its model is missing): raised before training, never per completion."""
