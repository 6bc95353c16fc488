"""Warming reward workers: load every isolated verifier's imports and caches, and run one job of each kind.

The forkserver imports this module once (so forked workers start warm), and each worker calls
:func:`warm_up` again before it reports ready (nearly free when the forkserver already did the work, a full
warm-up when it could not). Either way no job meets a cold worker: a fresh worker's first math job would
otherwise pay 0.5-1.3 s of sympy and latex2sympy start-up against its time limit.
"""

from orsta_trl.verifiers.registry import REGISTRY


def warm_up() -> None:
    for verifier in REGISTRY.values():
        if verifier.isolated:
            verifier.warm_up()


warm_up()
