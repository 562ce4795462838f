"""Keep a local serving path up: tritonserver, its load shedder, its Python backend stubs and
its reaper; restart what dies, bounded, with backoff, or stop everything and say why.

    server = TritonServer(repository).start()
    code = Supervisor(server, max_restarts=5).run(stop_event)   # returns when stop_event is set

A server that dies (a crash such as SIGSEGV, an OOM kill, an exit) is cleaned up (stubs,
shared memory), the cause is reported with its last error lines, and it is started again on
the same ports after a backoff of 1, 2, 4, ... s (at most ``max_backoff_s``). More than
``max_restarts`` restarts within ``window_s`` means something is persistently wrong: the
supervisor gives up and returns a non-zero code. Setting the stop event drains and stops the
server (``TritonServer.stop``).

The helpers are watched every ``poll_s`` (0.1 s) while tritonserver runs:

- the **load shedder** (HAProxy in front of gRPC): a dead one is started again on the same
  port at once, then after 0.1, 0.2, 0.4, ... s (at most 1 s) while it keeps failing to start;
  three failed starts in a row, or more than ``max_restarts`` deaths within ``window_s``,
  stop the whole server with exit code 1 and the reason;
- a **Python backend stub** that dies: Triton 2.51 keeps its model READY while every request
  to it fails (``runtime.stubs``); the model is reloaded, counted like a restart;
- the **reaper** (the cleanup of a SIGKILLed serve): started again.

While something is broken, ``TritonServer.is_ready()`` is false (``server.broken``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from tritonclient.utils import InferenceServerException

from triton_deploy.errors import ServerStartError
from triton_deploy.runtime.server import TritonServer, describe_exit

_FAILED_STARTS = 3  # a helper that fails to start this many times in a row is given up
_MAX_HELPER_BACKOFF_S = 1.0
_SCAN_S = 2.0  # how often the whole process table is read for new stubs

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
        self.gave_up: str | None = None  # why the supervisor stopped the server, if it did
        self._helper_deaths: collections.deque[float] = collections.deque()
        self._last_scan = 0.0

    def run(self, stop: threading.Event, *, poll_s: float = 0.2) -> int:
        """Supervise until ``stop`` is set (then drain and stop: exit code 0 when clean)."""
        recent: collections.deque[float] = collections.deque()
        running = self.server.pid is not None
        failed_start = "tritonserver is not running"
        while True:
            if running:
                while not stop.is_set() and self.server.wait(poll_s) is None:
                    fatal = self._check_helpers(stop)
                    if fatal is not None:
                        self.gave_up = fatal
                        self.on_event(f"giving up: {fatal}; stopping the server")
                        if "shedder" in self.server.broken:
                            # nothing can be in flight through a dead shedder (its connections
                            # died with it): stop at once, so that whatever restarts serve
                            # (systemd, a container runtime) can do so within a second or two
                            self.server.stop(timeout_s=0, drain_first=False, kill_grace_s=0.2)
                        else:
                            self.server.stop()
                        return 1
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
                self.gave_up = (
                    f"{len(recent)} restarts within {self.window_s:.0f} s (--max-restarts)"
                )
                self.on_event(f"giving up: {self.gave_up}")
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

    # -- helpers ----------------------------------------------------------------------------------
    def _count_helper_death(self, what: str) -> str | None:
        """Record a helper's death; the reason to give up when there were too many."""
        now = time.monotonic()
        deaths = self._helper_deaths
        while deaths and now - deaths[0] > self.window_s:
            deaths.popleft()
        if len(deaths) >= self.max_restarts:
            return (
                f"{what}, after {len(deaths)} helper restarts within {self.window_s:.0f} s "
                "(--max-restarts)"
            )
        deaths.append(now)
        return None

    def _check_helpers(self, stop: threading.Event) -> str | None:
        """Restart dead helpers; the reason to stop everything, or None."""
        server = self.server
        if not server.shedder_alive:
            cause = f"load shedder (HAProxy) {describe_exit(server.shedder_exit)}"
            server.broken["shedder"] = cause
            self.causes.append(cause)
            fatal = self._count_helper_death(cause)
            if fatal is not None:
                return fatal
            self.on_event(f"{cause}: gRPC clients cannot connect; restarting it")
            failures, delay = 0, 0.0
            while True:
                if stop.wait(delay):
                    return None
                try:
                    server.restart_shedder()
                    break
                except ServerStartError as exc:
                    failures += 1
                    if failures >= _FAILED_STARTS:
                        return f"the load shedder cannot start again: {exc}"
                    delay = min(0.1 * 2 ** (failures - 1), _MAX_HELPER_BACKOFF_S)
                    self.on_event(f"load shedder did not start ({exc}); again in {delay:g} s")
            server.broken.pop("shedder", None)
            self.on_event(f"load shedder restarted: gRPC serving again at {server.grpc_url}")
        if not server.reaper_alive:
            self.on_event("reaper (cleanup after a killed serve) died; starting a new one")
            server.restart_reaper()
        watch = server.stub_watch
        if watch is None:
            return None
        now = time.monotonic()
        if now - self._last_scan >= _SCAN_S:  # new stubs (a model reloaded by an admin)
            watch.scan()
            self._last_scan = now
        for model, stub in watch.dead():
            state = self._model_state(model)
            if state != "READY":  # unloaded on purpose (an admin, tdeploy drain)
                watch.forget(model)
                continue
            cause = (
                f"Python backend stub of {model} (instance {stub.instance}, pid {stub.pid}) "
                "died; Triton keeps the model READY while every request to it fails"
            )
            server.broken[f"model {model}"] = cause
            self.causes.append(cause)
            self.on_event(f"{cause}: reloading {model}")
            fatal = self._count_helper_death(f"the stubs of {model} keep dying")
            if fatal is not None:
                return fatal
            watch.forget(model)
            try:
                server.reload_model(model)
            except ServerStartError as exc:
                return str(exc)
            watch.scan()
            server.broken.pop(f"model {model}", None)
            self.on_event(f"{model} reloaded: serving again")
        return None

    def _model_state(self, model: str) -> str:
        import tritonclient.grpc as grpcclient

        try:
            with grpcclient.InferenceServerClient(self.server.admin_url) as client:
                index = client.get_model_repository_index(
                    headers=self.server.admin_grpc_headers, as_json=True
                )
        except InferenceServerException:
            return "UNKNOWN"
        states = {m["name"]: m.get("state", "") for m in index.get("models", [])}
        return str(states.get(model, ""))
