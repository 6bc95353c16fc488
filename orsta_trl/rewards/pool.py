"""Killable worker processes that run verifiers' slow jobs under a CPU-time limit.

math-verify's own timeout relies on SIGALRM: main thread only, whole seconds, and blind to C-level work, so a
single ``\\boxed{5^{5^{5^{5^5}}}}`` can stall every rank for minutes. Here each slow job (for math, the
(gold, answer region) pair that needs sympy) goes to a worker process, and the parent kills a worker whose job
has used more than ``timeout_s`` of **CPU time** (read with psutil), or more than ``wall_limit_s`` of wall
time (a backstop for a job that stalls without computing). The job then scores 0 with ``timeout``.

Why CPU time: on a busy training node (tokenisation, data loading, other ranks' workers) a job that needs
0.2 s of CPU can take seconds of wall time; a wall-clock limit turns such slow answers into zeros and trains
the policy the wrong way. A pathological job burns CPU from its first instant, so it is still caught at the
limit (plus one check interval).

Warm workers: each worker does the verifiers' imports and one parse and verify (``warm_up``) before it reports
ready, and no job is handed to a worker that is not ready. A killed worker is replaced by a **spare** that is
already warm, and a new spare is started in the background, so the next job never meets a cold worker.

Size: by default the usable cores divided among the node's local ranks (``LOCAL_WORLD_SIZE``), at least one:
eight ranks on a 64-core node get eight workers each, not 64. The pool never grows past that.

Workers are forked from a ``forkserver`` that has already imported and warmed the verifiers, so a replacement
starts quickly without inheriting the trainer's threads or CUDA state, and never re-imports the caller's
``__main__`` (a training script without a main guard, a notebook, stdin).
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

import psutil

_CONTEXT = None
_KEPT_JOBS = 100_000


class Outcome(str):
    """A job's result that is not the verifier's: it timed out, its worker died, or it raised."""


TIMED_OUT = Outcome("timeout")
WORKER_DIED = Outcome("worker_died")


def _mp_context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["orsta_trl.rewards.warm"])
    return _CONTEXT


def default_workers() -> int:
    """Usable cores divided among this node's ranks (``LOCAL_WORLD_SIZE``, set by torchrun and accelerate)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, cores // ranks)


def _worker_main(conn: Connection) -> None:
    import signal

    from orsta_trl.rewards.warm import warm_up
    from orsta_trl.verifiers.registry import from_worker_reference

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool
    started = time.process_time()
    warm_up()  # cheap when the forkserver already warmed up; a full warm-up when it could not
    try:
        conn.send(("ready", time.process_time() - started))
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        index, reference, job = message
        cpu = time.process_time()
        try:  # a user's verifier arrives pickled and imports its module here
            result = from_worker_reference(reference).run_slow_job(job)
        except Exception as exc:  # a verifier bug must not take the worker down
            result = Outcome(f"verifier_error:{type(exc).__name__}")
        try:
            conn.send((index, result, time.process_time() - cpu))
        except (BrokenPipeError, OSError):  # the pool closed while this job ran
            return


@dataclass(frozen=True)
class Task:
    """One slow job of ``verifier`` (a built-in's name, or a user verifier pickled: ``worker_reference``).
    ``affinity``: jobs with the same key (math: the gold's text) go to the same worker while it has more of
    them, so a gold is parsed once per batch instead of once in every worker."""

    verifier: str | bytes
    job: Any
    affinity: Any = None


class _Pending:
    """The jobs not yet sent, grouped by affinity key, in order of first appearance."""

    def __init__(self, tasks: list[Task]):
        self.groups: dict[Any, deque[int]] = {}
        for index, task in enumerate(tasks):
            key = ("#", index) if task.affinity is None else task.affinity
            self.groups.setdefault(key, deque()).append(index)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def take(self, worker: _Worker, others: set) -> int:
        """The next job for ``worker``: more of the key it last ran, else the first key no other worker is on."""
        key = worker.last_key if worker.last_key in self.groups else None
        if key is None:
            key = next((k for k in self.groups if k not in others), next(iter(self.groups)))
        group = self.groups[key]
        index = group.popleft()
        if not group:
            del self.groups[key]
        worker.last_key = key
        return index


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
    """One worker process; ``ready`` once it has warmed up."""

    def __init__(self):
        parent, child = _mp_context().Pipe()
        self.conn = parent
        self.process = _mp_context().Process(target=_worker_main, args=(child,), daemon=True)
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.ps = psutil.Process(self.process.pid)
        self.ready = False
        self.warm_up_cpu_s: float | None = None
        self.task: int | None = None
        self.started_wall = self.started_cpu = 0.0
        self.jobs_done = 0
        self.last_key: Any = None

    def mark_ready(self) -> bool:
        """Read the worker's ready message; False when it died while starting."""
        try:
            _, self.warm_up_cpu_s = self.conn.recv()
        except (EOFError, OSError):
            return False
        self.ready = True
        return True

    def wait_ready(self, timeout: float = 120.0) -> None:
        if not self.ready and not (self.conn.poll(timeout) and self.mark_ready()):
            raise RuntimeError("a reward worker process did not start")

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:  # it just died: the pipe will say so
            return self.started_cpu
        return times.user + times.system

    def send(self, index: int, task: Task) -> None:
        self.task = index
        self.started_wall, self.started_cpu = time.monotonic(), self.cpu_seconds()
        self.conn.send((index, task.verifier, task.job))

    def job_cpu(self) -> float:
        return self.cpu_seconds() - self.started_cpu

    def over(self, now: float, timeout_s: float, wall_limit_s: float) -> bool:
        """Past a limit? The OS is asked for CPU time only once the job has run ``timeout_s`` of wall time:
        before that its CPU time (one thread) cannot have passed the limit, so fast jobs cost no system call."""
        wall = now - self.started_wall
        return wall >= wall_limit_s or (wall >= timeout_s and self.job_cpu() >= timeout_s)

    def seconds_to_limit(self, now: float, timeout_s: float, wall_limit_s: float) -> float:
        """A lower bound on the wall time before the job can pass a limit."""
        wall = now - self.started_wall
        cpu_left = timeout_s - wall if wall < timeout_s else timeout_s - self.job_cpu()
        return min(cpu_left, wall_limit_s - wall)

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
        else:
            self.conn.close()


class WorkerPool:
    """Run verifiers' slow jobs in warm worker processes, each job under a CPU-time limit.

    Args:
        timeout_s: the per-job CPU-time limit in seconds (floats allowed).
        workers: processes that take jobs (default :func:`default_workers`).
        max_workers: the most processes that take jobs at once while slow jobs block the others (default
            and cap: :func:`default_workers`, what the cores can run; never fewer than ``workers``).
        wall_limit_s: wall-clock backstop per job (default ``max(5 * timeout_s, timeout_s + 10)``).
        spare: keep one extra warm worker to replace a killed one at once.
    """

    def __init__(
        self,
        timeout_s: float = 2.0,
        workers: int | None = None,
        max_workers: int | None = None,
        wall_limit_s: float | None = None,
        spare: bool = True,
    ):
        self.timeout_s = float(timeout_s)
        self.workers = max(1, workers or default_workers())
        self.max_workers = max(self.workers, max_workers or default_workers())
        self.wall_limit_s = float(wall_limit_s or max(5 * self.timeout_s, self.timeout_s + 10))
        self.spare = spare
        self.stall_s = min(0.2, self.timeout_s / 4)
        self._pool: list[_Worker] = []  # workers that take jobs (ready or starting)
        self._spares: list[_Worker] = []
        self.timeouts = 0
        self.replaced = 0
        self.failed_starts = 0
        # the most recent jobs (trimmed past _KEPT_JOBS, so a long run does not grow them without bound)
        self.job_cpu_s: list[float] = []  # worker-side CPU time of each finished job
        self.job_wall_s: list[float] = []  # wall time of each job, finished or timed out

    def describe(self) -> str:
        return (
            f"{self.workers} reward worker(s) per rank{' + 1 warm spare' if self.spare else ''}, "
            f"CPU-time limit {self.timeout_s:g}s per job, wall backstop {self.wall_limit_s:g}s"
        )

    def start(self) -> None:
        """Start and warm the workers (and the spare) now rather than on the first batch."""
        self._fill(self.workers)
        for worker in self._pool + self._spares:
            worker.wait_ready()

    def _fill(self, n: int) -> None:
        while len(self._pool) < n:
            self._pool.append(self._spares.pop(0) if self._spares else _Worker())
        if self.spare and not self._spares:
            self._spares.append(_Worker())

    def map(self, tasks: list[Task]) -> list[Any]:
        """Run every job; results come back in order. A job past the limit gets :data:`TIMED_OUT`."""
        results: list[Any] = [None] * len(tasks)
        if not tasks:
            return []
        self._fill(min(self.workers, len(tasks)))
        pending = _Pending(tasks)
        busy: dict[Connection, _Worker] = {}
        idle = [w for w in self._pool if w.ready]
        if not idle:  # a fresh pool: wait for the first workers to warm up
            for worker in self._pool:
                worker.wait_ready()
            idle = list(self._pool)
        while pending or busy:
            while pending and idle:
                worker = idle.pop()
                index = pending.take(worker, {w.last_key for w in busy.values()})
                worker.send(index, tasks[index])
                busy[worker.conn] = worker
            starting = {w.conn: w for w in self._pool + self._spares if not w.ready}
            if pending and not busy and not idle and not any(w in self._pool for w in starting.values()):
                self._fill(self.workers)  # every worker died while starting: start new ones
                continue
            now = time.monotonic()
            self._grow_if_stalled(pending, idle, busy, now)
            for conn in wait(list(busy) + list(starting), timeout=self._next_check(busy, now, pending)):
                if conn in starting:
                    worker = starting[conn]
                    if not worker.mark_ready():
                        self._discard(worker)
                    elif worker in self._pool:
                        idle.append(worker)
                    continue
                worker = busy.pop(conn)
                try:
                    index, result, cpu = conn.recv()
                except (EOFError, OSError):  # the worker died (out of memory, segfault in a C library)
                    results[worker.task] = WORKER_DIED
                    self._replace(worker, idle)
                    continue
                self._record(time.monotonic() - worker.started_wall, cpu)
                worker.jobs_done += 1
                self.failed_starts = 0
                results[index] = result
                idle.append(worker)
            now = time.monotonic()
            for conn, worker in list(busy.items()):
                if worker.over(now, self.timeout_s, self.wall_limit_s):
                    busy.pop(conn)
                    results[worker.task] = TIMED_OUT
                    self._record(now - worker.started_wall)
                    self.timeouts += 1
                    self._replace(worker, idle)
        self._shrink()
        return results

    def _record(self, wall: float, cpu: float | None = None) -> None:
        for values, value in ((self.job_wall_s, wall), (self.job_cpu_s, cpu)):
            if value is not None:
                values.append(value)
                if len(values) > 2 * _KEPT_JOBS:
                    del values[:_KEPT_JOBS]

    def _next_check(self, busy: dict, now: float, pending) -> float:
        """Seconds until a busy job could first pass a limit: its CPU cannot grow faster than the wall clock."""
        if not busy:
            return self.stall_s
        wake = min(w.seconds_to_limit(now, self.timeout_s, self.wall_limit_s) for w in busy.values())
        if pending and len(self._pool) < self.max_workers:
            wake = min(wake, self.stall_s)
        return max(0.005, wake)

    def _grow_if_stalled(self, pending, idle, busy, now: float) -> None:
        """Work waits and every worker is stuck on a slow job: add one, up to ``max_workers``."""
        if not pending or idle or len(self._pool) >= self.max_workers:
            return
        if any(not w.ready for w in self._pool):
            return  # one is already on its way
        if all(now - w.started_wall > self.stall_s for w in busy.values()):
            self._pool.append(self._spares.pop(0) if self._spares and self._spares[0].ready else _Worker())
            if self._pool[-1].ready:
                idle.append(self._pool[-1])

    def _replace(self, worker: _Worker, idle: list[_Worker]) -> None:
        """Kill ``worker``; a warm spare takes its place at once, and a new spare starts in the background."""
        worker.kill()
        self._pool.remove(worker)
        self.replaced += 1
        ready = [s for s in self._spares if s.ready]
        if ready:
            self._spares.remove(ready[0])
            self._pool.append(ready[0])
            idle.append(ready[0])
        else:
            self._pool.append(_Worker())  # joins the idle list when it reports ready
        if self.spare and not self._spares:
            self._spares.append(_Worker())

    def _discard(self, worker: _Worker) -> None:
        """A worker that died before it was ready: drop it (three in a row is an error, not bad luck)."""
        self.failed_starts += 1
        if self.failed_starts >= 3:
            raise RuntimeError("reward worker processes die while starting; run `orsta-trl check-data` first")
        for group in (self._pool, self._spares):
            if worker in group:
                group.remove(worker)
        worker.kill()

    def _shrink(self) -> None:
        while len(self._pool) > self.workers:
            self._pool.pop().stop()

    def close(self) -> None:
        for worker in self._pool + self._spares:
            worker.stop()
        self._pool.clear()
        self._spares.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
