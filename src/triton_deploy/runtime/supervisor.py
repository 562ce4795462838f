"""Keep a local tritonserver serving: restart it when it dies by itself, bounded, with backoff.

    server = TritonServer(repository).start()
    code = Supervisor(server, max_restarts=5).run(stop_event)   # returns when stop_event is set

A server that dies (a crash such as SIGSEGV, an OOM kill, an exit) is cleaned up (stubs,
shared memory), the cause is reported with its last error lines, and it is started again on
the same ports after a backoff of 1, 2, 4, ... s (at most ``max_backoff_s``). More than
``max_restarts`` restarts within ``window_s`` means something is persistently wrong: the
supervisor gives up and returns a non-zero code. Setting the stop event drains and stops the
server (``TritonServer.stop``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from triton_deploy.errors import ServerStartError
from triton_deploy.runtime.server import TritonServer, describe_exit

__all__ = ["Supervisor"]


class Supervisor:
    """See the module docstring."""

    def __init__(
        self,
        server: TritonServer,
        *,
        max_restarts: int = 5,
        window_s: float = 600.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_event = on_event or (lambda _message: None)
        self.restarts: list[float] = []  # when each restart happened (monotonic)
        self.causes: list[str] = []

    def run(self, stop: threading.Event, *, poll_s: float = 0.2) -> int:
        """Supervise until ``stop`` is set (then drain and stop: exit code 0 when clean)."""
        recent: collections.deque[float] = collections.deque()
        running = self.server.pid is not None
        failed_start = "tritonserver is not running"
        while True:
            if running:
                while not stop.is_set() and self.server.wait(poll_s) is None:
                    pass
                if stop.is_set():
                    code = self.server.stop()
                    return 0 if code in (0, None) else 1
                code = self.server.returncode
                lines = self.server.error_lines()[-5:]
                self.server.stop()  # reap and clean up: stubs, shared memory, work folder
                cause = f"tritonserver {describe_exit(code)}"
                if lines:
                    cause += "; last error lines:\n" + "\n".join(f"  | {ln}" for ln in lines)
            else:
                cause = failed_start
            self.causes.append(cause)
            self.on_event(cause)
            now = time.monotonic()
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) >= self.max_restarts:
                self.on_event(
                    f"giving up: {len(recent)} restarts within {self.window_s:.0f} s "
                    "(--max-restarts)"
                )
                return 1
            delay = min(self.backoff_s * 2 ** len(recent), self.max_backoff_s)
            self.on_event(
                f"restarting in {delay:g} s (restart {len(recent) + 1} of at most "
                f"{self.max_restarts} within {self.window_s:.0f} s)"
            )
            if stop.wait(delay):
                return 0
            recent.append(time.monotonic())
            self.restarts.append(recent[-1])
            try:
                self.server.start()
                running = True
                self.on_event(f"tritonserver restarted: ready at {self.server.grpc_url}")
            except ServerStartError as exc:
                running = False
                failed_start = f"restart failed: {exc}"
