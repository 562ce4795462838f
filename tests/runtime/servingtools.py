"""Small model repositories of our own for the serving tests (Python models, fast to load)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.runtime.server import free_port

TDEPLOY = Path(sys.executable).parent / "tdeploy"

SLEEPY_MODEL = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        import json
        params = json.loads(args["model_config"]).get("parameters", {})
        self.delay = float(params.get("delay_s", {}).get("string_value", "0"))

    def execute(self, requests):
        time.sleep(self.delay)
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            out.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("Y", x + 1)]))
        return out
"""


def _tensor(name: str) -> dict[str, object]:
    return {"name": name, "data_type": mc.TYPE_FP32, "dims": [1]}


def python_model(root: Path, name: str, *, delay_s: float = 0.0, max_batch_size: int = 64) -> None:
    """``Y = X + 1`` after sleeping ``delay_s`` per execution (FP32 [batch, 1])."""
    config = mc.ModelConfig(
        name=name,
        backend="python",
        max_batch_size=max_batch_size,
        input=[mc.ModelInput(**_tensor("X"))],  # type: ignore[arg-type]
        output=[mc.ModelOutput(**_tensor("Y"))],  # type: ignore[arg-type]
        dynamic_batching=mc.ModelDynamicBatching(),
    )
    config.parameters["delay_s"].string_value = str(delay_s)
    (root / name / "1").mkdir(parents=True, exist_ok=True)
    (root / name / "config.pbtxt").write_text(text_format.MessageToString(config))
    (root / name / "1" / "model.py").write_text(SLEEPY_MODEL)


def pipeline_repository(root: Path, *, first_step_delay_s: float = 1.0) -> Path:
    """Ensemble ``pipeline``: ``slow`` (sleeps) then ``fast``; ``Y = X + 2``."""
    python_model(root, "slow", delay_s=first_step_delay_s)
    python_model(root, "fast")
    config = mc.ModelConfig(
        name="pipeline",
        platform="ensemble",
        max_batch_size=64,
        input=[mc.ModelInput(**_tensor("X"))],  # type: ignore[arg-type]
        output=[mc.ModelOutput(**_tensor("Y"))],  # type: ignore[arg-type]
    )
    steps = config.ensemble_scheduling.step
    steps.add(model_name="slow", model_version=-1, input_map={"X": "X"}, output_map={"Y": "mid"})
    steps.add(model_name="fast", model_version=-1, input_map={"X": "mid"}, output_map={"Y": "Y"})
    (root / "pipeline" / "1").mkdir(parents=True, exist_ok=True)
    (root / "pipeline" / "config.pbtxt").write_text(text_format.MessageToString(config))
    return root


def shm_prefix_of(pid: int) -> str:
    """The shared-memory prefix a running tritonserver was given (from its command line)."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    for arg in args:
        match = re.search(r"shm-region-prefix-name=(\S+)", arg)
        if match:
            return match.group(1)
    raise AssertionError(f"tritonserver {pid} has no shm-region-prefix-name: {args}")


def shm_regions(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir("/dev/shm") if name.startswith(prefix))


class Serve:
    """`tdeploy serve` in a real process on free ports, its output read in the background;
    ready once it printed its banner."""

    def __init__(self, repository: Path, *extra: str, ready_timeout_s: float = 120) -> None:
        self.grpc_port = free_port()
        self.url = f"127.0.0.1:{self.grpc_port}"
        self.process = subprocess.Popen(
            [
                str(TDEPLOY), "serve", "--repository", str(repository),
                "--grpc-port", str(self.grpc_port), "--http-port", str(free_port()),
                "--metrics-port", str(free_port()), "--no-log-server", *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {"COLUMNS": "200"},
        )  # fmt: skip
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for("  stop:", ready_timeout_s)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line)

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout_s: float = 60) -> str:
        """The first line printed that holds ``text`` (an event awaited, not a timing bound)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                line = next((line for line in self.lines if text in line), None)
            if line is not None:
                return line
            if time.monotonic() > deadline or (
                self.process.poll() is not None and not self._reader.is_alive()
            ):
                raise AssertionError(f"{text!r} never printed:\n{self.output}")
            time.sleep(0.05)

    def child(self, name: str) -> psutil.Process:
        for child in psutil.Process(self.process.pid).children(recursive=True):
            if child.name() == name:
                return child
        raise AssertionError(f"no {name} under serve")

    def ready(self) -> bool:
        with grpcclient.InferenceServerClient(self.url) as client:
            try:
                return bool(client.is_server_ready(client_timeout=2))
            except Exception:
                return False

    def stop(self, sig: signal.Signals | None = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Send ``sig`` (None: send nothing) unless it has exited, wait for the exit and for
        the rest of its output; its exit code."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code
