"""Imported by the reward workers' forkserver only: load every verifier and run its warm-up once.

Workers fork from that process, so they start with math-verify's grammar loaded and its regexes compiled;
otherwise the first completion each fresh worker sees would pay a second or more of start-up cost against its
time limit.
"""

from orsta_trl.verifiers.registry import REGISTRY

for _verifier in REGISTRY.values():
    if _verifier.isolated:
        _verifier.warm_up()
