"""What keeps a local tritonserver from outliving ``tdeploy serve`` or leaving debris behind.

- ``spawn``: starts a child that the kernel sends SIGKILL when the process that started it
  dies, whatever killed it (SIGKILL, a crash, a closed terminal): ``PR_SET_PDEATHSIG``. Linux
  ties that signal to the *thread* that forked, so ``spawn`` forks from one thread that lives
  as long as the process: a server started from a short-lived worker thread (a supervisor, a
  test's stand-in kubelet, an application's own pool) is not killed when that thread ends.
- Python backend stubs are tritonserver's children and stay in its process group; orphaned,
  they ignore SIGTERM and keep their shared-memory regions. ``kill_process_group`` ends them,
  ``remove_shm_regions`` removes the regions: every server gets a prefix of its own
  (``--backend-config=python,shm-region-prefix-name=...``) so only its own regions are touched.
- A ``Reaper`` (``python -m triton_deploy.runtime.reaper``) is a small watcher process that does
  that cleanup when its owner dies without doing it itself (SIGKILL of ``tdeploy serve``): it
  notices through a pipe whose write end only the owner holds.
- ``check_ports_free``: refuse busy ports before starting, naming the process that holds one.
  gRPC binds with SO_REUSEPORT, so a second server on a busy port would otherwise start and
  look ready while the old one answers.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from queue import SimpleQueue
from typing import IO, Any

from triton_deploy.errors import PortInUseError

__all__ = [
    "SHM_DIRECTORY",
    "Reaper",
    "check_ports_free",
    "kill_process_group",
    "new_shm_prefix",
    "parent_death_signal",
    "port_holder",
    "process_group_alive",
    "remove_shm_regions",
    "spawn",
    "sweep_stale_shm_regions",
]

SHM_DIRECTORY = Path("/dev/shm")
_PR_SET_PDEATHSIG = 1
# tdeploy-<owner pid>-<random>-<uuid the Python backend appends>
_PREFIX = re.compile(r"^tdeploy-(\d+)-[0-9a-f]+-")


def parent_death_signal(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` that asks the kernel to send ``sig`` when the parent *thread* exits.

    Use it through ``spawn``, which forks from a thread that lives as long as the process.
    """
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it

    def _set() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), int(sig))

    return _set


class _Spawner:
    """One daemon thread, started on first use, that forks every child ``spawn`` starts.

    A daemon thread ends only with the process, so the death signal fires when the process
    dies and not when the caller's thread ends. A fork after ``os.fork()`` (a new pid) starts a
    new thread: the parent's thread does not exist in the child.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._queue: SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = SimpleQueue()

    def run(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._queue = SimpleQueue()
                threading.Thread(
                    target=self._loop, args=(self._queue,), name="tdeploy-spawner", daemon=True
                ).start()
                self._pid = os.getpid()
            queue = self._queue
        done: Future[Any] = Future()
        queue.put((work, done))
        return done.result()

    @staticmethod
    def _loop(queue: SimpleQueue[tuple[Callable[[], Any], Future[Any]]]) -> None:
        while True:
            work, done = queue.get()
            try:
                done.set_result(work())
            except BaseException as exc:  # handed to the caller, re-raised in its thread
                done.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(
    args: list[str], *, death_signal: int = signal.SIGKILL, **popen: Any
) -> subprocess.Popen[str]:
    """``subprocess.Popen(args, **popen)`` whose child gets ``death_signal`` when this process
    dies, from whichever thread it is called."""
    hook = parent_death_signal(death_signal)
    return _SPAWNER.run(lambda: subprocess.Popen(args, preexec_fn=hook, **popen))


# -- shared memory ---------------------------------------------------------------------------------
def new_shm_prefix() -> str:
    """A region-name prefix unique to one server, with its owner's pid (for stale sweeps)."""
    return f"tdeploy-{os.getpid()}-{secrets.token_hex(4)}-"


def shm_regions(prefix: str, directory: Path = SHM_DIRECTORY) -> list[Path]:
    if not prefix or not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(prefix))


def remove_shm_regions(prefix: str, directory: Path = SHM_DIRECTORY) -> list[str]:
    """Remove every region whose name starts with ``prefix``; the names removed."""
    removed = []
    for path in shm_regions(prefix, directory):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.name)
    return removed


def sweep_stale_shm_regions(directory: Path = SHM_DIRECTORY) -> list[str]:
    """Remove regions left by tdeploy servers whose owner process no longer exists."""
    removed: list[str] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        match = _PREFIX.match(path.name)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path.name)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- processes -------------------------------------------------------------------------------------
def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_process_group(pgid: int, *, timeout_s: float = 10.0) -> bool:
    """SIGKILL every process of the group (tritonserver and its stubs); True once none is left.

    Members that are zombies of a living parent count as gone: they hold no memory or ports.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _living_members(pgid):
            return True
        time.sleep(0.05)
    return not _living_members(pgid)


def _living_members(pgid: int) -> list[int]:
    """Pids in the group that are not zombies (from /proc; no psutil needed in the reaper)."""
    if not process_group_alive(pgid):
        return []
    living = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            living.append(int(entry.name))
    return living


# -- ports -----------------------------------------------------------------------------------------
def port_holder(port: int) -> str | None:
    """'pid 1234 (tritonserver)' for the process listening on TCP ``port``, if it can be seen."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with the serve extra
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "a process of another user"
            try:
                process = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({process.name()}: {' '.join(process.cmdline()[:3])})"
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return f"pid {conn.pid}"
    return None


def check_ports_free(address: str, ports: Mapping[str, int]) -> None:
    """Raise ``PortInUseError`` naming the first busy port and, if visible, who holds it."""
    for role, port in ports.items():
        if not port:
            continue
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR: connections in TIME_WAIT from a previous server do not count,
            # a listening socket does (SO_REUSEPORT is what gRPC uses; we leave it off).
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                holder = port_holder(port)
                reason = "in use" if exc.errno == errno.EADDRINUSE else "not allowed"
                raise PortInUseError(
                    f"{role} port {port} on {address} is {reason}"
                    + (f": held by {holder}" if holder else "")
                    + "; stop that process or choose another port"
                    + f" (--{role.lower()}-port)",
                    port=port,
                    holder=holder,
                ) from None


# -- the reaper ------------------------------------------------------------------------------------
class Reaper:
    """A watcher process that cleans up after a server if its owner dies without doing so.

    ``watch()`` tells it the server's process group, shm prefix and work folder; ``release()``
    tells it the owner cleaned up itself. If the owner dies first (its end of the pipe closes),
    the reaper kills the process group, removes the regions and the folder, and exits.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Reaper:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "triton_deploy.runtime.reaper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it
        )
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _send(self, message: dict[str, object]) -> None:
        stdin: IO[bytes] | None = self._process.stdin if self._process else None
        if stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()

    def watch(self, *, pgid: int, shm_prefix: str, workdir: str | None) -> None:
        self._send({"pgid": pgid, "shm_prefix": shm_prefix, "workdir": workdir})

    def release(self) -> None:
        """The owner cleaned up: the reaper exits without touching anything."""
        if self._process is None:
            return
        self._send({"release": True})
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdin:
                self._process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        self._process = None


def cleanup(*, pgid: int | None, shm_prefix: str | None, workdir: str | None) -> Iterator[str]:
    """Kill the group, remove the regions and the folder; yields what was done (for logs)."""
    if pgid and process_group_alive(pgid):
        gone = kill_process_group(pgid)
        yield f"killed process group {pgid}" + ("" if gone else " (some processes remain)")
    if shm_prefix:
        removed = remove_shm_regions(shm_prefix)
        if removed:
            yield f"removed {len(removed)} shared-memory region(s) {shm_prefix}*"
    if workdir and Path(workdir).exists():
        shutil.rmtree(workdir, ignore_errors=True)
        yield f"removed {workdir}"
