"""No debris: the server dies with `tdeploy serve`, stubs and shared memory are cleaned up,
busy ports are refused before starting, crashes are restarted, SIGHUP drains."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import tritonclient.grpc as grpcclient
from servingtools import Serve, python_model, shm_prefix_of, shm_regions

from triton_deploy.errors import PortInUseError
from triton_deploy.runtime.server import TritonServer, free_port

pytestmark = pytest.mark.server


@pytest.fixture
def echo_repository(tmp_path: Path) -> Path:
    python_model(tmp_path / "repo", "echo")
    return tmp_path / "repo"


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until(condition: object, timeout_s: float = 60) -> bool:
    """Poll ``condition()`` until true (a wait for an event, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def serve_processes() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:  # a failed test must not leave a server behind
        serve.stop()


def test_sigkill_of_serve_leaves_no_process_and_no_shared_memory(
    model_repository: Path, serve_processes: list[Serve]
) -> None:
    serve = Serve(model_repository)
    serve_processes.append(serve)
    triton = serve.child("tritonserver")
    stubs = triton.children()
    assert len(stubs) >= 5  # one Python backend stub per model instance
    prefix = shm_prefix_of(triton.pid)
    assert shm_regions(prefix)
    workdir = Path(
        next(a for a in triton.cmdline() if a.startswith("--backend-directory=")).split("=", 1)[1]
    ).parent
    assert workdir.is_dir()

    serve.process.kill()  # no chance to clean up: the kernel and the reaper must
    serve.process.wait()
    assert _wait_until(lambda: all(_gone(p) for p in [triton, *stubs])), [
        p for p in [triton, *stubs] if not _gone(p)
    ]
    assert _wait_until(lambda: not shm_regions(prefix)), shm_regions(prefix)
    assert _wait_until(lambda: not workdir.exists())


def test_a_killed_tritonserver_leaves_no_stub_and_no_shared_memory(echo_repository: Path) -> None:
    server = TritonServer(echo_repository).start()
    assert server.pid is not None
    triton = psutil.Process(server.pid)
    stubs = triton.children()
    prefix = shm_prefix_of(server.pid)
    assert stubs and shm_regions(prefix)
    os.kill(server.pid, signal.SIGKILL)  # the stubs are orphaned: they ignore SIGTERM
    assert server.stop() == -signal.SIGKILL
    assert all(_gone(p) for p in stubs)
    assert shm_regions(prefix) == []


def test_busy_ports_are_refused_naming_the_port_and_its_holder(
    echo_repository: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUseError) as info:
            TritonServer(echo_repository, grpc_port=port).start()
    message = str(info.value)
    assert f"gRPC port {port} on 127.0.0.1 is in use" in message
    assert f"pid {os.getpid()}" in message and "--grpc-port" in message


def test_a_second_server_on_the_same_ports_is_refused_before_it_starts(
    echo_repository: Path,
) -> None:
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port()}
    with TritonServer(echo_repository, **ports) as first:
        with pytest.raises(PortInUseError, match=r"held by pid \d+ \(tritonserver"):
            TritonServer(echo_repository, **ports).start()
        assert first.is_ready()


def test_a_port_handed_out_in_one_process_is_not_handed_out_in_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parallel workers, or two `tdeploy serve`s, each ask for free ports: bind(0) may give both
    the same one before either binds it (this made a CI run fail). The port is claimed machine-
    wide until its holder exits."""
    from triton_deploy.runtime import server as server_module

    child = subprocess.Popen(
        [sys.executable, "-c", "from triton_deploy.runtime.server import free_port\n"
         "import sys\nprint(free_port(), flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        assert not server_module._claim(port), f"port {port}, held by pid {child.pid}, claimed"

        class SameFirst(socket.socket):  # the kernel giving this process the child's port first
            handed = False

            def getsockname(self) -> tuple[str, int]:
                if not SameFirst.handed:
                    SameFirst.handed = True
                    return ("127.0.0.1", port)
                return super().getsockname()  # type: ignore[no-any-return]

        monkeypatch.setattr(server_module.socket, "socket", SameFirst)
        other = free_port()
        assert SameFirst.handed and other != port
        SameFirst.handed = False  # a listener of this process (a test's proxy) skips it too
        with server_module.listening_socket() as listener:
            assert SameFirst.handed and listener.getsockname()[1] not in (port, other)
        monkeypatch.undo()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert server_module._claim(port)  # the holder is gone: its claim went with it


def test_serve_restarts_a_crashed_server_and_says_why(
    echo_repository: Path, serve_processes: list[Serve]
) -> None:
    serve = Serve(echo_repository, "--max-restarts", "2")
    serve_processes.append(serve)
    first = serve.child("tritonserver")
    first.send_signal(signal.SIGSEGV)
    cause = serve.wait_for("tritonserver killed")
    assert "killed by SIGSEGV (signal 11)" in cause
    serve.wait_for("tritonserver restarted: ready")
    assert serve.ready()
    assert serve.child("tritonserver").pid != first.pid
    assert serve.stop() == 0, serve.output


def test_serve_gives_up_after_max_restarts(
    echo_repository: Path, serve_processes: list[Serve]
) -> None:
    serve = Serve(echo_repository, "--max-restarts", "1")
    serve_processes.append(serve)
    serve.child("tritonserver").kill()
    serve.wait_for("tritonserver restarted: ready")
    serve.child("tritonserver").kill()
    assert serve.stop(None) == 1, serve.output
    assert "giving up: 1 restarts within 600 s" in serve.output


def test_sighup_drains_and_stops_serve(echo_repository: Path, serve_processes: list[Serve]) -> None:
    """Closing the terminal sends SIGHUP: drain and stop, leaving nothing behind."""
    serve = Serve(echo_repository)
    serve_processes.append(serve)
    triton = serve.child("tritonserver")
    assert serve.stop(signal.SIGHUP) == 0, serve.output
    assert "SIGHUP: stopping" in serve.output and "drained 1 models" in serve.output
    assert _gone(triton)


_STARTED_FROM_A_THREAD = """
import sys, threading, time
from pathlib import Path
from triton_deploy.runtime.server import TritonServer

servers = []
worker = threading.Thread(target=lambda: servers.append(TritonServer(Path(sys.argv[1])).start()))
worker.start()
worker.join()  # the thread that started the server is gone
print("READY", servers[0].pid, servers[0].grpc_port, flush=True)
time.sleep(600)
"""


def test_a_server_started_from_a_short_lived_thread_lives_until_its_process_dies(
    echo_repository: Path, tmp_path: Path
) -> None:
    """Linux sends PR_SET_PDEATHSIG when the forking *thread* ends: a server started from a
    worker thread (a supervisor, an application's pool) must outlive that thread, and still
    die with its process."""
    script = tmp_path / "start_in_thread.py"
    script.write_text(_STARTED_FROM_A_THREAD)
    owner = subprocess.Popen(
        [sys.executable, str(script), str(echo_repository)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line.startswith("READY"), line + owner.stdout.read()
        _, pid, port = line.split()
        triton = psutil.Process(int(pid))
        time.sleep(1)  # the death signal, had it fired, would have ended it by now
        assert not _gone(triton)
        with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
            assert client.is_server_ready(client_timeout=5)
    finally:
        owner.kill()
        owner.wait()
    assert _wait_until(lambda: _gone(triton))
