"""Every serving process supervised: the load shedder (HAProxy) and the Python backend stubs
die under `tdeploy serve`, and serve either brings the path back or stops with a non-zero exit
and the reason; readiness is false while the path is broken.

The 2 s bounds are the issue's own ("back within 2 s or exit within 2 s"); each is measured
from the kill to the first successful call (or to serve's exit), with a loaded 2-core machine
in mind: serve restarts a dead shedder at once (about 0.1 s), and gives up at once when it may
not restart it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from servingtools import Serve, python_model
from tritonclient.utils import InferenceServerException

from triton_deploy.runtime.server import TritonServer
from triton_deploy.runtime.stubs import stubs_of
from triton_deploy.runtime.supervisor import Supervisor

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        shutil.which("haproxy") is None, reason="haproxy missing: run `bash .ci/system-deps`"
    ),
]
BOUND_S = 2.0


@pytest.fixture
def echo_repository(tmp_path: Path) -> Path:
    python_model(tmp_path / "repo", "echo")
    return tmp_path / "repo"


def _infer(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with grpcclient.InferenceServerClient(url) as client:
            x = grpcclient.InferInput("X", [1, 1], "FP32")
            x.set_data_from_numpy(np.ones((1, 1), np.float32))
            client.infer("echo", [x], client_timeout=timeout_s)
            return True
    except InferenceServerException:
        return False


class Load:
    """Calls in a loop from 4 threads, each answer recorded with its time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, float, bool]] = []  # (start, end, ok)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ok = _infer(self.url)
            self.results.append((started, time.monotonic(), ok))
            if not ok:
                time.sleep(0.02)

    def first_ok_after(self, t: float) -> float | None:
        """When the first call that started after ``t`` succeeded."""
        return min((end for start, end, ok in self.results if start > t and ok), default=None)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()


def test_kill_9_of_the_shedder_under_load_service_back_within_2_s(
    echo_repository: Path, serves: list[Serve]
) -> None:
    serve = Serve(echo_repository)
    serves.append(serve)
    load = Load(serve.url)
    try:
        time.sleep(1.0)
        shedder = serve.child("haproxy")
        killed_at = time.monotonic()
        shedder.kill()
        serve.wait_for("load shedder restarted", 30)
        time.sleep(1.0)
    finally:
        load.stop()
    back = load.first_ok_after(killed_at)
    assert back is not None, serve.output
    print(f"\n[shedder kill -9 under load] first good answer {back - killed_at:.2f} s after")
    assert back - killed_at <= BOUND_S, f"back after {back - killed_at:.2f} s\n{serve.output}"
    assert "load shedder (HAProxy) killed by SIGKILL (signal 9)" in serve.output
    assert serve.child("haproxy").pid != shedder.pid
    assert serve.process.poll() is None  # still serving
    assert serve.stop() == 0, serve.output


def test_kill_9_of_the_shedder_when_it_may_not_restart_serve_exits_1_within_2_s(
    echo_repository: Path, serves: list[Serve]
) -> None:
    serve = Serve(echo_repository, "--max-restarts", "0")
    serves.append(serve)
    load = Load(serve.url)
    try:
        time.sleep(0.5)
        shedder = serve.child("haproxy")
        tritonserver = serve.child("tritonserver")
        killed_at = time.monotonic()
        shedder.kill()
        code = serve.process.wait(timeout=60)
        exited_at = time.monotonic()
    finally:
        load.stop()
    serve.stop()  # exited already: the rest of its output
    assert code == 1, serve.output
    print(f"\n[shedder kill -9, --max-restarts 0] serve exited {exited_at - killed_at:.2f} s after")
    assert exited_at - killed_at <= BOUND_S, f"exited after {exited_at - killed_at:.2f} s"
    assert "giving up: load shedder (HAProxy) killed by SIGKILL" in serve.output
    assert "error: serving stopped: load shedder (HAProxy) killed by SIGKILL" in serve.output
    assert not psutil.pid_exists(tritonserver.pid) or tritonserver.status() == "zombie"


def test_readiness_is_false_while_the_shedder_or_a_stub_is_dead(echo_repository: Path) -> None:
    with TritonServer(echo_repository, max_inflight=4) as server:
        assert server.is_ready()
        assert server.shedder_pid is not None
        os.kill(server.shedder_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.shedder_alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.is_ready()  # Triton itself is still ready; the path is not
        server.restart_shedder()
        assert server.is_ready()
        (stub,) = stubs_of(server.pid or 0)
        os.kill(stub.pid, signal.SIGKILL)
        while (
            any(s.pid == stub.pid for s in stubs_of(server.pid or 0))
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        with grpcclient.InferenceServerClient(server.admin_url) as client:
            # what Triton 2.51 says about a model whose stub is dead: READY
            assert client.is_model_ready("echo") and client.is_server_ready()
        assert not server.is_ready()


def test_a_dead_stub_is_reported_and_its_model_reloaded(
    echo_repository: Path, serves: list[Serve]
) -> None:
    serve = Serve(echo_repository)
    serves.append(serve)
    assert _infer(serve.url)
    tritonserver = serve.child("tritonserver")
    stub = next(c for c in tritonserver.children() if c.name().startswith("triton_python"))
    stub.kill()
    serve.wait_for("echo reloaded: serving again", 60)
    assert re.search(
        rf"Python backend stub of echo \(instance echo_0\w*, pid {stub.pid}\) died; Triton keeps "
        "the model READY while every request to it fails: reloading echo",
        serve.output,
    ), serve.output
    assert _infer(serve.url, timeout_s=10)
    assert serve.child("tritonserver").pid == tritonserver.pid  # the server was not restarted
    assert serve.stop() == 0, serve.output


def test_supervisor_gives_up_when_stubs_keep_dying(echo_repository: Path) -> None:
    events: list[str] = []
    server = TritonServer(echo_repository).start()
    supervisor = Supervisor(server, max_restarts=1, on_event=events.append)
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run(stop)), daemon=True)
    thread.start()

    def kill_stub() -> None:
        deadline = time.monotonic() + 60
        while not (stubs := stubs_of(server.pid or 0)) and time.monotonic() < deadline:
            time.sleep(0.1)
        (stub,) = stubs
        os.kill(stub.pid, signal.SIGKILL)

    try:
        kill_stub()
        deadline = time.monotonic() + 120
        while "echo reloaded: serving again" not in events and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "echo reloaded: serving again" in events, events
        kill_stub()  # the second death within the window: more than --max-restarts 1
        thread.join(timeout=120)
    finally:
        stop.set()
        thread.join(timeout=60)
        server.stop()
    assert result == [1], events
    assert supervisor.gave_up == (
        "the stubs of echo keep dying, after 1 helper restarts within 600 s (--max-restarts)"
    )
