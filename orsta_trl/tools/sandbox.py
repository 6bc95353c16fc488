"""Run untrusted Python (a model's tool call) in a separate, limited process.

Layers, outermost first (each is checked by ``tests/test_tools.py``):

* **A separate process** in its own session (the whole process group is killed at the wall-time limit), run as
  ``python -I`` (no ``PYTHON*`` variables, no user site, no script folder on ``sys.path``) with a minimal
  environment (``HOME`` and ``TMPDIR`` point into the working directory; no proxies, no tokens).
* **A fresh temporary working directory**, deleted afterwards; the code is sent on stdin, output goes to a file
  outside that directory, and only its first ``max_output`` characters are returned.
* **rlimits**: address space (``memory_mb``), CPU seconds (the wall limit + 1), file size (``max_file_mb``),
  open files (64).
* **No network**: where unprivileged user namespaces work (probed once), the process runs under
  ``unshare --user --map-root-user --net --pid --fork --kill-child``: a network namespace with only a down
  loopback, and a PID namespace whose processes all die with it. Without them, only the audit hook below
  blocks sockets.
* **A Python audit hook** (:pep:`578`), installed before the code runs: ``open`` outside the working directory
  is refused, except reading the Python installation (stdlib and site-packages, so imports work); so are
  listing, creating, renaming or removing paths outside it, ``chdir`` out of it, sockets, ``fork``, ``exec``,
  ``posix_spawn``, ``system``, ``subprocess``, ``kill``, loading libraries with ``ctypes`` and looking up
  their symbols, and importing ``_socket`` or re-importing ``_posixsubprocess`` (whose ``fork_exec`` the prelude
  replaced by a refusal).

What this does **not** protect against (also in the README): the audit hook is Python-level, so native code
that the allowed packages already loaded could bypass it (a C extension that opens files or sockets itself),
and so could Python that loads an extension module's file under another name through importlib's internals; files readable through the Python installation's folders are readable; CPU
and memory of the node are shared (no cgroup: the limits are per process, and when the host runs as root,
``RLIMIT_NPROC`` does not apply, which is why fork is refused by the hook); timing side channels; a kernel
exploit. It is a guard against a model's mistakes and casual escapes, not a security boundary for hostile code.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass

#: Runs in the child before the code: reads the code from stdin, installs the audit hook, runs the code.
PRELUDE = r"""
import os, sys
_code = sys.stdin.read()
_root = os.path.realpath(os.getcwd())
_reads = tuple(p for p in {os.path.realpath(p) + os.sep for p in sys.argv[1:]} if p != os.sep)
_blocked = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
            "os.killpg", "subprocess.Popen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata",
            "pty.spawn", "os.setuid", "os.chroot")
_listing = ("os.listdir", "os.scandir", "glob.glob", "os.walk")
_paths = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chdir",
          "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree",
          "shutil.copyfile", "shutil.move")
_write = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
def _inside(path):
    p = os.path.realpath(os.fsdecode(path))
    return p == _root or p.startswith(_root + os.sep)
def _readable(path):
    return (os.path.realpath(os.fsdecode(path)) + os.sep).startswith(_reads)
def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or path is None or _inside(path):
            return
        writing = bool((flags or 0) & _write) or any(c in (mode or "") for c in "wax+")
        if not writing and _readable(path):
            return
        raise PermissionError(f"sandbox: no access to {os.fsdecode(path)!r} outside the working directory")
    if event.startswith(_blocked) or event.startswith("socket."):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "ctypes.dlopen" and args and args[0] is not None:
        raise PermissionError("sandbox: loading native libraries is not allowed")
    if event == "import" and args and args[0] in ("_socket", "_posixsubprocess"):
        raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
    if event in _listing and args and isinstance(args[0], (str, bytes, os.PathLike)):
        if not (_inside(args[0]) or _readable(args[0])):
            raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
    if event in _paths:
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)) and not _inside(arg):
                raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
import _posixsubprocess
def _no_fork_exec(*args, **kwargs):
    raise PermissionError("sandbox: subprocess is not allowed")
_posixsubprocess.fork_exec = _no_fork_exec
sys.addaudithook(_hook)
del _hook, _no_fork_exec
exec(compile(_code, "<tool>", "exec"), {"__name__": "__main__"})
"""


@dataclass(frozen=True)
class SandboxResult:
    """``ok``: the code ran to completion (exit status 0); ``text``: its output, or a message starting with
    ``Error`` (the limit hit, or the last line of the traceback)."""

    ok: bool
    text: str


@functools.cache
def network_namespace_available() -> bool:
    """Whether ``unshare --user --map-root-user --net`` works here (probed once per process)."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(_UNSHARE + ["true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


_UNSHARE = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"]


def _read_roots() -> list[str]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if paths.get(k)}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "lib-dynload"))}
    return sorted(roots)


def _limits(memory_mb: int, cpu_s: int, max_file_mb: int):
    def apply() -> None:  # in the child, between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb << 20, max_file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_python(
    code: str,
    *,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_output: int = 4000,
    max_file_mb: int = 16,
) -> SandboxResult:
    """Run ``code`` with ``python -I`` in a fresh temporary directory, within the limits above.

    Args:
        code: Python source; what it prints (stdout, then stderr) is the output.
        timeout_s: wall-time limit in seconds; the process group is killed when it passes.
        memory_mb: address-space limit (``RLIMIT_AS``).
        max_output: characters of output returned at most (the rest is cut, with a note).
        max_file_mb: largest file the code may write (``RLIMIT_FSIZE``), output included.

    Returns:
        A :class:`SandboxResult`; never raises for anything the code does.
    """
    work = tempfile.mkdtemp(prefix="orsta-sandbox-")
    spool = tempfile.TemporaryFile()  # outside the working directory: the code cannot reach it by path
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": work,
        "TMPDIR": work,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    command = [sys.executable, "-I", "-c", PRELUDE, *_read_roots()]
    if network_namespace_available():
        command = _UNSHARE + command
    timed_out = False
    try:
        process = subprocess.Popen(
            command,
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=spool,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_limits(memory_mb, int(timeout_s) + 1, max_file_mb),  # noqa: PLW1509
        )
        try:
            process.communicate(code.encode("utf-8", "replace"), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
            process.wait()
        except BaseException:  # Ctrl-C or an error here: the child is in its own session, stop it too
            _kill_group(process)
            process.wait()
            raise
        spool.seek(0)
        output = spool.read(max_output * 4 + 1).decode("utf-8", "replace")
        size = spool.seek(0, os.SEEK_END)
        spool.seek(max(0, size - 2000))
        tail = spool.read().decode("utf-8", "replace")
    except OSError as exc:
        return SandboxResult(False, f"Error: the sandbox could not start ({exc})")
    finally:
        spool.close()
        shutil.rmtree(work, ignore_errors=True)
    return _result(
        process.returncode, output, tail, size, timed_out, timeout_s, memory_mb, max_output, max_file_mb
    )


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _result(
    code, output, tail, size, timed_out, timeout_s, memory_mb, max_output, max_file_mb
) -> SandboxResult:
    if len(output) > max_output:
        output = output[:max_output] + f"\n... (output cut at {max_output} characters)"
    if size >= max_file_mb << 20:
        return SandboxResult(False, f"Error: the code wrote more than the {max_file_mb} MB output limit")
    if timed_out:
        return SandboxResult(
            False, f"Error: the code ran past the {timeout_s:g} s time limit and was stopped"
        )
    if code == 0:
        return SandboxResult(True, output if output.strip() else "(no output)")
    if code in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return SandboxResult(
            False, f"Error: the code ran past its CPU-time limit and was stopped (status {code})"
        )
    lines = [line for line in tail.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {code}"
    if "File too large" in last:
        return SandboxResult(False, f"Error: the code wrote more than the {max_file_mb} MB file-size limit")
    if "MemoryError" in last:
        last = f"MemoryError (the memory limit is {memory_mb} MB)"
    return SandboxResult(False, f"Error: {last}")
