"""`tdeploy serve` as a user runs it: quiet by default, the whole log with --verbose, and Ctrl-C
with a request in flight lets it finish (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from triton_deploy.runtime.logs import worth_showing
from triton_deploy.runtime.server import free_port

# Lines of a real start of the example repository (tritonserver 2.51, CPU only).
STARTUP = [
    'W1130 15:20:19.392065 15547 pinned_memory_manager.cc:273] "Unable to allocate pinned '
    "system memory, pinned memory pool will not be available: CUDA driver version is "
    'insufficient for CUDA runtime version"',
    'I1130 15:20:19.400237 15547 cuda_memory_manager.cc:117] "CUDA memory pool disabled"',
    'E1130 15:20:19.400329 15547 server.cc:241] "CudaDriverHelper has not been initialized."',
    'I1130 15:20:19.404806 15547 model_lifecycle.cc:472] "loading: ctr_features:1"',
    'E1130 15:20:29.099197 15547 ensemble_scheduler.cc:1468] "unable to create stream for '
    'ctr: CUDA driver version is insufficient for CUDA runtime version"',
    "I1130 15:20:29.100985 15547 tritonserver.cc:2598] ",
    "+----------------------------------+------------------+",
    "| Option                           | Value            |",
    "| server_version                   | 2.51.0           |",
    "",
    "Error: Failed to initialize NVML",
    'W1130 15:20:29.100821 15547 metrics.cc:798] "DCGM unable to start: DCGM initialization error"',
]
WORTH_IT = [
    "E1130 15:31:02.118212 17111 model_lifecycle.cc:654] \"failed to load 'digits_cnn' "
    'version 1: Invalid argument: unable to find ONNX model file"',
    'W1130 15:31:02.118212 17111 model_repository_manager.cc:1200] "ignoring model folder x"',
    "2026-11-30T15:31:02Z E 17111 server.cc:250] failed to start",
]


def test_quiet_by_default_keeps_what_says_something() -> None:
    assert [line for line in STARTUP if worth_showing(line)] == []
    assert all(worth_showing(line) for line in WORTH_IT)


SLOW_MODEL = """
import time
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        time.sleep(2.0)
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())]
            )
            for r in requests
        ]
"""
SLOW_CONFIG = """name: "slow"
backend: "python"
max_batch_size: 8
input { name: "X" data_type: TYPE_FP32 dims: [1] }
output { name: "Y" data_type: TYPE_FP32 dims: [1] }
"""


@pytest.fixture
def slow_repository(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "slow" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "slow" / "config.pbtxt").write_text(SLOW_CONFIG)
    (tmp_path / "repo" / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    return tmp_path / "repo"


class Serve:
    """`tdeploy serve` in its own process, read until its ready banner."""

    def __init__(self, repository: Path, *args: str) -> None:
        self.grpc_port = free_port()
        command = [
            str(Path(sys.executable).with_name("tdeploy")), "serve",
            "--repository", str(repository), "--grpc-port", str(self.grpc_port),
            "--http-port", str(free_port()), "--metrics-port", str(free_port()), *args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {"COLUMNS": "200"},
        )
        assert self.process.stdout is not None
        self.before_ready: list[str] = []
        for line in self.process.stdout:
            self.before_ready.append(line)
            if line.startswith("  stop:"):
                break
        assert self.process.poll() is None, "".join(self.before_ready)

    def finish(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        rest, _ = self.process.communicate(timeout=90)
        return self.process.returncode, rest

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(slow_repository: Path) -> Iterator[type[Serve]]:
    started: list[Serve] = []

    class Tracked(Serve):
        def __init__(self, repository: Path, *args: str) -> None:
            super().__init__(repository, *args)
            started.append(self)

    yield Tracked
    for server in started:
        server.kill()


@pytest.mark.server
def test_ctrl_c_with_a_request_in_flight_lets_it_finish(
    serve: type[Serve], slow_repository: Path
) -> None:
    server = serve(slow_repository)
    banner = "".join(server.before_ready)
    assert "| Option" not in banner and "server_version" not in banner  # quiet by default
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    x = grpcclient.InferInput("X", [1, 1], "FP32")
    x.set_data_from_numpy(np.array([[42.0]], np.float32))
    results: list[float] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(float(client.infer("slow", [x]).as_numpy("Y")[0, 0]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    threading.Event().wait(0.7)  # the request is executing (the model takes 2 s)
    code, rest = server.finish(signal.SIGINT)  # what Ctrl-C sends
    thread.join(timeout=30)
    assert errors == [] and results == [42.0], (errors, rest)
    assert code == 0, rest
    assert "SIGINT: stopping, letting in-flight requests finish" in rest
    assert "tritonserver exited with code 0" in rest


@pytest.mark.server
def test_verbose_shows_tritons_tables(serve: type[Serve], slow_repository: Path) -> None:
    server = serve(slow_repository, "--verbose")
    banner = "".join(server.before_ready)
    assert "| Option" in banner and "server_version" in banner and "| slow " in banner
    code, _ = server.finish(signal.SIGTERM)
    assert code == 0
