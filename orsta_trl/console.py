"""One line of progress for the user, printed by the main process only."""

from __future__ import annotations

import os


def say(message: str) -> None:
    """Print ``[orsta-trl] message`` on rank 0 (every rank runs the same code; one of them speaks)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[orsta-trl] {message}", flush=True)
