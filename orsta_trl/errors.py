"""The typed errors of the library. Library functions raise these; only the entry points (``cli``, ``train``)
turn them into exit codes, through :func:`exit_on_error`.

Every one names what is wrong and what to change: the file and line, the source and record, the key or field.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class OrstaError(Exception):
    """Base of every error the library raises on purpose (the CLI prints it and exits 1)."""

    def messages(self) -> list[str]:
        """The lines the command line prints for this error."""
        return [f"error: {self}"]


class RecipeError(OrstaError, ValueError):
    """A recipe key that does not exist, a value that does not fit, or a recipe that cannot run."""


class DataError(OrstaError, ValueError):
    """Data that cannot be used: a bad record, a missing file, completions that name no record."""


class MissingFileError(DataError, FileNotFoundError):
    """A file or folder the command needs does not exist (a dataset, a run directory, its event files)."""


class NotReady(OrstaError, RuntimeError):
    """A verifier cannot score at all (its model is missing): raised before training, never per completion."""


def exit_on_error(run: Callable[[], int | None]) -> int:
    """Run a command; a library error (bad recipe, bad data, a verifier not ready) becomes its messages on
    stderr and exit status 1. The only place where errors turn into exit codes (the entry points call it)."""
    try:
        return run() or 0
    except OrstaError as exc:
        for line in exc.messages():
            print(line, file=sys.stderr)
        return 1
    except OSError as exc:  # the environment, not our data: a permission, a full disk
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the library has stopped its workers; a shell's usual 128 + SIGINT
        print("interrupted (Ctrl-C): no half-written checkpoint was kept", file=sys.stderr)
        return 130
