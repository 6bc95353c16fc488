"""Shutdown hooks: what must stop with training, however it ends (finished, an error, Ctrl-C).

The reward workers are stopped by :meth:`RewardRouter.close`; anything else a reward needs that outlives a
call (a tool sandbox, a judge server, a client pool) registers a hook here when it starts::

    from orsta_trl.rewards.shutdown import on_shutdown
    server = start_judge_server()
    on_shutdown(server.terminate)

:func:`orsta_trl.train` (and so ``orsta-trl train``) runs every hook after training, in the reverse order of
registration, in a ``finally`` block: also after Ctrl-C or an exception. A hook that raises is reported and the
others still run. Hooks run once; :func:`run_shutdown_hooks` then clears them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

_HOOKS: list[Callable[[], object]] = []


def on_shutdown(hook: Callable[[], object]) -> Callable[[], object]:
    """Register ``hook`` (no arguments) to run when training ends; returns it, so it can decorate.

    Args:
        hook: stops a server, closes a client, removes a temporary folder.

    Returns:
        ``hook``.
    """
    _HOOKS.append(hook)
    return hook


def run_shutdown_hooks() -> int:
    """Run every registered hook, last registered first, and forget them; an exception is printed, not raised.

    Returns:
        How many hooks ran.
    """
    ran = 0
    while _HOOKS:
        hook = _HOOKS.pop()
        ran += 1
        try:
            hook()
        except Exception as exc:  # one failing hook must not keep the others from stopping their servers
            print(
                f"[orsta-trl] shutdown hook {getattr(hook, '__name__', hook)!r} failed: {exc}",
                file=sys.stderr,
            )
    return ran
