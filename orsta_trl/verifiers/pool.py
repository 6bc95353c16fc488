"""Killable worker processes that run verifiers' slow jobs under a hard time limit.

math-verify's own timeout relies on SIGALRM: main thread only, whole seconds, and blind to C-level work, so a
single ``\\boxed{5^{5^{5^{5^5}}}}`` can stall every rank for minutes. Here each completion goes to a worker
process (as a small job: for math, the (gold, answer) pair that needs sympy); the parent watches the wall clock
and kills a worker whose current job has run past ``timeout_s``, records :data:`TIMED_OUT` for it, and starts
a fresh worker. When every worker is busy on a
slow completion and work is waiting, extra workers are started (up to ``max_workers``) so that several
pathological completions time out side by side instead of one after another; extras are retired when the
batch ends.

Workers are forked from a ``forkserver`` that has already imported the verifiers, so a replacement starts in
milliseconds without inheriting the trainer's threads or CUDA state. Unlike multiprocessing's default, workers
never re-import the caller's ``__main__`` (a training script without a main guard, a notebook, stdin).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

_CONTEXT = None


class Outcome(str):
    """A job's result that is not the verifier's: it timed out, its worker died, or it raised."""


TIMED_OUT = Outcome("timeout")
WORKER_DIED = Outcome("worker_died")


def _mp_context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["orsta_trl.verifiers.warm_workers"])
    return _CONTEXT


def _worker_main(conn: Connection) -> None:
    from orsta_trl.verifiers.registry import REGISTRY

    conn.send("ready")  # start-up time (imports) never counts against a completion's limit
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, name, job = message
        try:
            result = REGISTRY[name].run_slow_job(job)
        except Exception as exc:  # a verifier bug must not take the worker down
            result = Outcome(f"verifier_error:{type(exc).__name__}")
        conn.send((index, result))


@dataclass(frozen=True)
class Task:
    """One slow job of the verifier named ``verifier``."""

    verifier: str
    job: Any


@contextmanager
def _main_module_hidden():
    """Hide ``__main__``'s file and spec while a worker starts, so multiprocessing does not re-import it."""
    main = sys.modules["__main__"]
    saved = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


class _Worker:
    def __init__(self):
        parent, child = _mp_context().Pipe()
        self.conn = parent
        self.process = _mp_context().Process(target=_worker_main, args=(child,), daemon=True)
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.task: int | None = None
        self.started = 0.0
        self.ready = False

    def wait_ready(self, timeout: float = 120.0) -> None:
        if not self.ready:
            if not self.conn.poll(timeout):
                raise RuntimeError("a reward worker process did not start")
            self.conn.recv()
            self.ready = True

    def send(self, index: int, task: Task) -> None:
        self.task, self.started = index, time.monotonic()
        self.conn.send((index, task.verifier, task.job))

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=1)
        if self.process.is_alive():
            self.kill()


class WorkerPool:
    """Run verifiers' slow jobs in worker processes, each under a hard wall-clock limit.

    Args:
        timeout_s: the per-job limit in seconds (floats allowed).
        workers: processes kept warm (default: the number of usable cores, at least 1).
        max_workers: the most processes at once while slow completions block the warm ones.
    """

    def __init__(self, timeout_s: float = 2.0, workers: int | None = None, max_workers: int | None = None):
        self.timeout_s = float(timeout_s)
        self.workers = max(1, workers or len(os.sched_getaffinity(0)))
        self.max_workers = max(self.workers, max_workers or 4 * self.workers)
        self.stall_s = min(0.2, self.timeout_s / 4)
        self._pool: list[_Worker] = []
        self.timeouts = 0

    def start(self) -> None:
        """Start the warm workers now rather than on the first batch."""
        self._ensure(self.workers)

    def _ensure(self, n: int) -> None:
        while len(self._pool) < n:
            self._pool.append(_Worker())
        for worker in self._pool:
            worker.wait_ready()

    def map(self, tasks: list[Task]) -> list[Any]:
        """Run every job; results come back in order. A job past the limit gets :data:`TIMED_OUT`."""
        results: list[Any] = [None] * len(tasks)
        if not tasks:
            return []
        self._ensure(min(self.workers, len(tasks)))
        pending = deque(range(len(tasks)))
        idle = list(self._pool)
        busy: dict[Connection, _Worker] = {}
        starting: dict[Connection, _Worker] = {}
        while pending or busy:
            while pending and idle:
                worker = idle.pop()
                index = pending.popleft()
                worker.send(index, tasks[index])
                busy[worker.conn] = worker
            now = time.monotonic()
            stalled = [w for w in busy.values() if now - w.started > self.stall_s]
            if pending and not idle and not starting and stalled and len(self._pool) < self.max_workers:
                worker = _Worker()
                self._pool.append(worker)
                starting[worker.conn] = worker
            wake = min(w.started for w in busy.values()) + self.timeout_s - now if busy else self.stall_s
            if pending and len(self._pool) < self.max_workers:
                wake = min(wake, self.stall_s)
            for conn in wait(list(busy) + list(starting), timeout=max(0.0, wake)):
                if conn in starting:
                    worker = starting.pop(conn)
                    try:
                        conn.recv()
                    except (EOFError, OSError):
                        self._pool.remove(worker)
                        continue
                    worker.ready = True
                    idle.append(worker)
                    continue
                worker = busy.pop(conn)
                try:
                    index, result = conn.recv()
                except (EOFError, OSError):  # the worker died (out of memory, segfault in a C library)
                    index, result = worker.task, WORKER_DIED
                    self._replace(worker, idle)
                else:
                    idle.append(worker)
                results[index] = result
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                if now - worker.started >= self.timeout_s:
                    busy.pop(conn)
                    results[worker.task] = TIMED_OUT
                    self.timeouts += 1
                    self._replace(worker, idle)
        self._shrink()
        return results

    def _replace(self, worker: _Worker, idle: list[_Worker]) -> None:
        worker.kill()
        self._pool.remove(worker)
        fresh = _Worker()
        self._pool.append(fresh)
        fresh.wait_ready()
        idle.append(fresh)

    def _shrink(self) -> None:
        while len(self._pool) > self.workers:
            self._pool.pop().stop()

    def close(self) -> None:
        for worker in self._pool:
            worker.stop()
        self._pool.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
