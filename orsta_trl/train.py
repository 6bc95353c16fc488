"""Train a policy with GRPO from a recipe: the thin entry point.

    accelerate launch orsta_trl/train.py recipes/det_7b.yaml [--key value ...]
    orsta-trl train recipes/tiny_cpu.yaml
    python -m orsta_trl.train recipes/tiny_cpu.yaml --max_steps 5

It reads the recipe and calls :func:`orsta_trl.api.train`; the phases (records → model → rows → rewards →
trainer → train → save) are there. Errors in the recipe or the data are printed as one message and exit 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if (
    __name__ == "__main__" and not __package__
):  # run as a file by accelerate: import the package, not siblings
    sys.path[0] = str(Path(__file__).resolve().parents[1])

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def main(argv: list[str] | None = None) -> int:
    """Parse ``RECIPE [--key value ...]`` and train; return the exit status.

    Under ``accelerate launch`` / ``torchrun``, torch's ``record`` hands an uncaught error to the launcher, which
    then prints it as the root cause of the run's failure (the first rank that failed) after stopping the others.
    """
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_main)(argv)


def _main(argv: list[str] | None = None) -> int:
    from orsta_trl.errors import exit_on_error

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2

    def run() -> int:
        from orsta_trl.api import train
        from orsta_trl.recipe import load_recipe

        train(load_recipe(argv[0], argv[1:]))
        return 0

    return exit_on_error(run)


if __name__ == "__main__":
    raise SystemExit(main())
