"""Per-source isolation: decoder work runs in a child process with time and memory limits.

A poison input — one that segfaults a native decoder, loops forever, or balloons memory (a
decompression bomb) — must cost at most its own ``rejects`` row, never the Ray worker and with
it the run. So each probe and analyze actor owns one :class:`Sandbox`: a long-lived child
Python process (started on first use, not per source) that runs one source at a time and
returns its result. The parent, the actor, enforces per source:

- a wall-clock limit: past it the child is killed and the source rejected as ``timeout``;
- a memory limit: the child's resident memory is polled while it works and its peak is checked
  when it answers; above ``isolation.memory_mb`` it is killed (or its answer discarded) and the
  source rejected as ``decode_error``;
- crash detection: a child that dies without answering (SIGSEGV in a native library, the OOM
  killer) is replaced and the source tried again ``isolation.retries`` times, then rejected as
  ``decode_error`` with the signal in the detail.

Timeouts and the memory limit are not retried: the same input hangs or balloons again, and a
retry would only double the time it wastes. Crashes are, because a process can also die of
something that is not the input's fault.

The child is a fresh interpreter started with ``subprocess`` (fork immediately followed by
exec, safe in a multi-threaded Ray worker, unlike a bare ``fork``) rather than
``multiprocessing``'s spawn, which would re-import the Ray worker's ``__main__`` and with it
Ray. It imports only what its work needs (PyAV, OpenCV, NumPy; torch only once TransNetV2
looks at a candidate shot boundary) and talks to the parent over a socket pair with pickled
messages. It dies with its parent: ``PR_SET_PDEATHSIG`` on Linux (so a child stuck in native
code goes too when the actor is killed), and an orderly exit when the socket closes.

Testing hook: ``isolation.faults`` maps a glob over source paths to ``hang``, ``crash`` or
``memory``; the child then sleeps forever, segfaults or allocates memory until killed instead of
working on a matching source, so tests exercise the real limits in a real child.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fnmatch
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from curate.media.video import MediaError
from curate.models.threads import limit_native_threads

if TYPE_CHECKING:  # the child process does without pydantic when it only probes
    from curate.config.sections import IsolationConfig

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often the parent checks the child's memory while it works, seconds."""

START_TIMEOUT_S = 120.0
"""Longest a child may take to start and import its modules (a loaded machine is slow)."""

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

_PR_SET_PDEATHSIG = 1

_CHILD_CODE = "import sys; from curate.media.sandbox import child_main; child_main(sys.argv[1:])"


class SandboxError(RuntimeError):
    """The sandbox itself failed (the child cannot start, or the work raised an unexpected
    error: a bug, not a bad input). It propagates, as it would without the sandbox."""


class Sandbox:
    """Runs one stage's per-source work in a child process under ``isolation`` limits.

    With ``isolation.enabled: false`` the work runs in-process, without limits. Sandboxes of
    one worker process that preload the same modules share one child (a Ray actor holds one
    stage; a test process builds many). Not thread-safe: one call at a time, as a Ray Data
    actor runs one batch at a time.
    """

    def __init__(self, config: IsolationConfig, stage: str, preload: Sequence[str] = ()) -> None:
        self.cfg = config
        self.stage = stage
        self.preload = tuple(preload)
        """Modules the child imports at start-up, so the first source's time limit does not
        pay for them."""

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        source: str,
        timeout_s: float,
        timeout_key: str,
        **kwargs: Any,
    ) -> Any:
        """``fn(*args, **kwargs)`` for ``source`` in the child; returns its result.

        ``fn`` and its arguments and result must pickle (``fn`` by reference: a module-level
        function). Raises :class:`MediaError` for the source (the child's own, or ``timeout`` /
        ``decode_error`` from a limit or a crash) and :class:`SandboxError` for anything else.
        ``timeout_key`` names the config key of the time limit in the reject detail.
        """
        if not self.cfg.enabled:
            return fn(*args, **kwargs)
        fault = self.fault_for(source)
        if fault == "worker":
            os.kill(os.getpid(), signal.SIGKILL)
        attempts = 1 + self.cfg.retries
        for attempt in range(1, attempts + 1):
            outcome = self._attempt(fn, args, kwargs, fault, timeout_s, timeout_key)
            if isinstance(outcome, _Result):
                return outcome.value
            log.warning(
                "%s: %s: the decoder process %s (attempt %d/%d)",
                self.stage,
                source,
                outcome,
                attempt,
                attempts,
            )
        tries = f" on each of {attempts} attempts" if attempts > 1 else ""
        raise MediaError(
            "decode_error",
            f"the decoder process {outcome}{tries} (isolation.retries={self.cfg.retries})",
        )

    def fault_for(self, source: str) -> str | None:
        """The simulated fault (``isolation.faults``) this stage meets on ``source``."""
        for pattern, kind in self.cfg.faults.items():
            stage, _, fault = kind.rpartition(":")
            if stage in ("", self.stage) and fnmatch.fnmatchcase(source, pattern):
                return fault
        return None

    @property
    def pid(self) -> int | None:
        """The process id of this sandbox's child, if one is running."""
        child = _CHILDREN.get(self.preload)
        return child.pid if child is not None else None

    def close(self) -> None:
        """Stop the child (a new one starts on the next call)."""
        child = _CHILDREN.pop(self.preload, None)
        if child is not None:
            child.close()

    def _child(self) -> _Child:
        child = _CHILDREN.get(self.preload)
        if child is None or child.pid is None:
            if child is not None:
                child.close()
            child = _CHILDREN[self.preload] = _Child(self.preload, self.stage)
        return child

    def _attempt(self, fn, args, kwargs, fault, timeout_s, timeout_key) -> _Result | str:
        """One try in the child: its result, or how the child died (a crash, retried). A
        timeout or the memory limit raises at once."""
        child = self._child()
        limit = self.cfg.memory_mb << 20
        try:
            child.conn.send((fn, args, kwargs, fault))
        except (OSError, ValueError):
            return self._died(child)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ready = child.conn.poll(min(POLL_S, max(0.0, deadline - time.monotonic())))
                reply = child.conn.recv() if ready else None
            except (EOFError, OSError, ValueError):
                return self._died(child)
            if ready:
                break
            rss = _rss_bytes(child.proc.pid)
            if rss is not None and rss > limit:
                self.close()
                raise MediaError("decode_error", self._memory_detail(rss))
            if child.proc.poll() is not None:
                return self._died(child)
            if time.monotonic() >= deadline:
                self.close()
                raise MediaError(
                    "timeout",
                    f"no result within {timeout_s:.4g} s ({timeout_key}); "
                    "the decoder process was killed",
                )
        # The peak catches a spike between two polls, so the outcome does not depend on timing.
        peak = _peak_rss_bytes(child.proc.pid) if child.peak_resettable else None
        if peak is not None and peak > limit:
            self.close()  # a fresh child for the next source rather than a bloated heap
            raise MediaError("decode_error", self._memory_detail(peak))
        kind = reply[0]
        if kind == "ok":
            return _Result(reply[1])
        if kind == "media_error":
            raise MediaError(reply[1], reply[2])
        if kind == "memory_error":
            raise MediaError("decode_error", f"out of memory while decoding: {reply[1]}")
        raise SandboxError(f"{reply[1]}\n--- in the {self.stage} sandbox process ---\n{reply[2]}")

    def _memory_detail(self, rss: int) -> str:
        return (
            f"memory limit exceeded: the decoder process reached {rss / 2**20:.0f} MiB > "
            f"isolation.memory_mb {self.cfg.memory_mb}; it was killed"
        )

    def _died(self, child: _Child) -> str:
        """Reap a child that died unexpectedly; returns how it died, for the reject detail."""
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = child.proc.wait(timeout=5)
        self.close()
        if code is None:
            return "stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"died of {signal.Signals(-code).name}"
            return f"died of signal {-code}"
        return f"exited with code {code}"


class _Child:
    """One sandbox process and the parent's end of its socket."""

    def __init__(self, preload: tuple[str, ...], stage: str) -> None:
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        # The child sees the modules this worker sees (a Ray runtime_env, PYTHONPATH, an
        # editable install), as multiprocessing's spawn would arrange.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        fd = child_sock.fileno()
        try:
            # Started from one long-lived thread: Linux sends the parent-death signal when the
            # *thread* that started a child ends, and the calling thread may be short-lived.
            self.proc = _LAUNCHER.submit(
                subprocess.Popen,
                [sys.executable, "-c", _CHILD_CODE, str(fd), str(os.getpid()), *preload],
                pass_fds=(fd,),
                env=env,
                stdin=subprocess.DEVNULL,
            ).result()
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())
        try:
            if not self.conn.poll(START_TIMEOUT_S):
                raise SandboxError(f"the {stage} sandbox process did not start")
            reply = self.conn.recv()
        except (EOFError, OSError) as e:
            code = self.proc.poll()
            self.close()
            raise SandboxError(
                f"the {stage} sandbox process failed to start (exit code {code}): {e}"
            ) from e
        except SandboxError:
            self.close()
            raise
        if reply[0] != "ready":
            self.close()
            raise SandboxError(f"the {stage} sandbox process failed to start:\n{reply[2]}")
        self.peak_resettable: bool = reply[1]
        """Whether the child can reset its peak memory, so the parent may read it per source."""
        log.debug("%s sandbox process %d started", stage, self.proc.pid)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc.poll() is None else None

    def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


_LAUNCHER = ThreadPoolExecutor(1, thread_name_prefix="sandbox-launcher")
"""The thread that starts every sandbox process (its worker lives as long as the process)."""

_CHILDREN: dict[tuple[str, ...], _Child] = {}
"""This process's sandbox children, by the modules they preload."""


def _close_children() -> None:
    for child in list(_CHILDREN.values()):
        child.close()
    _CHILDREN.clear()


atexit.register(_close_children)


class _Result:
    """A child's answer (distinguishes a ``None`` result from a death)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (Linux ``/proc``); None when unknown or gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss_bytes(pid: int) -> int | None:
    """Peak resident memory (``VmHWM``) of ``pid`` since its last reset."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# Child side -------------------------------------------------------------------------------


def child_main(argv: list[str]) -> None:
    """Entry point of the sandbox process: ``FD PARENT_PID [MODULE ...]``."""
    fd, parent_pid, preload = int(argv[0]), int(argv[1]), argv[2:]
    _die_with_parent(parent_pid)
    conn = Connection(fd)
    try:
        for module in preload:
            importlib.import_module(module)
        limit_native_threads()
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
        return
    conn.send(("ready", _reset_peak_rss()))
    while True:
        try:
            fn, args, kwargs, fault = conn.recv()
        except EOFError:
            return  # the parent closed the socket or died
        except Exception as e:  # the work could not be unpickled (an import failed)
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
            continue
        _reset_peak_rss()
        if fault:
            _simulate(fault)
        try:
            reply: tuple = ("ok", fn(*args, **kwargs))
        except MediaError as e:
            reply = ("media_error", e.reason, e.detail)
        except MemoryError as e:
            reply = ("memory_error", str(e) or "MemoryError")
        except Exception as e:
            reply = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
        except Exception as e:  # the result does not pickle
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a child stuck in native code
    never reads the closed socket); elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (``VmHWM``), so the parent can read one
    source's peak; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _simulate(fault: str) -> None:
    """The testing hook: behave like a poison input."""
    if fault == "hang":
        while True:
            time.sleep(3600)
    elif fault == "crash":
        ctypes.string_at(0)  # a real segfault in native code
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "memory":
        hog = []
        while True:  # until the parent's memory limit kills this process
            hog.append(b"\xff" * (16 << 20))
            time.sleep(0.01)
