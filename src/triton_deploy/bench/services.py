"""The other servers the bench starts next to Triton: the naive FastAPI service, MLServer, BentoML.

Each runs as its own process on free loopback ports, is polled until its readiness URL answers,
and is stopped with SIGTERM (then SIGKILL) when the ``with`` block ends; a start failure is a
``BenchError`` carrying the last lines of the process's output.

- naive: ``triton_deploy.bench.naive_service`` under uvicorn, one worker, in this environment.
- MLServer (its own environment): the model file with MLServer's XGBoost / LightGBM runtime and
  adaptive batching (``max_batch_size``, ``max_batch_time``), same V2 gRPC protocol as Triton,
  so our gRPC generator drives both alike (perf_analyzer cannot: MLServer has no ModelConfig RPC).
- BentoML (its own environment): a service with a batchable API (adaptive batching) around the
  model file with onnxruntime / XGBoost / LightGBM, over HTTP JSON.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import numpy as np

from triton_deploy.bench.envs import environment
from triton_deploy.bench.inprocess import FIL_FILES
from triton_deploy.bench.payloads import BenchError, ModelInfo
from triton_deploy.runtime.server import free_port

__all__ = [
    "ManagedProcess",
    "batch_log",
    "bentoml_service",
    "mlserver_service",
    "naive_service",
    "unsupported_reason",
]


class ManagedProcess:
    """A server process started on enter, ready when ``ready_url`` answers 200, stopped on exit."""

    def __init__(
        self,
        name: str,
        command: list[str],
        ready_url: str,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.name = name
        self.command = command
        self.ready_url = ready_url
        self.env = env
        self.cwd = cwd
        self.startup_timeout_s = startup_timeout_s
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        self.process: subprocess.Popen[str] | None = None
        self.url = ""  # what the load generator talks to (set by the factory)
        self.extra: dict[str, object] = {}
        self._cleanup: list[tempfile.TemporaryDirectory[str]] = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def __enter__(self) -> ManagedProcess:
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._stop()
                raise BenchError(
                    f"{self.name} exited with code {self.process.returncode} while starting:\n"
                    + "\n".join(f"  | {line}" for line in list(self.log)[-15:])
                )
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self._stop()
        raise BenchError(
            f"{self.name} was not ready within {self.startup_timeout_s:.0f} s:\n"
            + "\n".join(f"  | {line}" for line in list(self.log)[-15:])
        )

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip("\n"))

    def _stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        for directory in self._cleanup:
            directory.cleanup()
        self._cleanup.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


def naive_service(repository: Path, info: ModelInfo) -> ManagedProcess:
    port = free_port()
    env = {
        **os.environ,
        "TDEPLOY_NAIVE_REPOSITORY": str(Path(repository).resolve()),
        "TDEPLOY_NAIVE_MODEL": info.name,
    }
    command = [
        sys.executable, "-m", "uvicorn", "triton_deploy.bench.naive_service:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
    ]  # fmt: skip
    service = ManagedProcess(
        "naive FastAPI service", command, f"http://127.0.0.1:{port}/health", env=env
    )
    service.url = f"http://127.0.0.1:{port}/predict"
    return service


def _fil_type(info: ModelInfo) -> str:
    parameters = {k: v.string_value for k, v in info.config.parameters.items()}
    return parameters.get("model_type", "xgboost")


def _model_file(info: ModelInfo) -> Path:
    if info.kind == "fil":
        name = info.config.default_model_filename or FIL_FILES.get(_fil_type(info), "")
    else:
        name = info.config.default_model_filename or "model.onnx"
    path = info.version_directory() / name
    return path / "model.onnx" if path.is_dir() else path


def unsupported_reason(tool: str, info: ModelInfo) -> str | None:
    """Why ``tool`` (mlserver, bentoml) cannot serve this model, or None when it can."""
    if info.max_batch_size <= 0:
        return "the model does not batch"
    if tool == "mlserver":
        if info.kind != "fil" or _fil_type(info) == "treelite_checkpoint":
            return "MLServer's runtimes here: XGBoost and LightGBM tree models (fil)"
        return None
    if info.kind not in ("fil", "onnxruntime_onnx", "onnxruntime"):
        return f"no BentoML runner for backend '{info.kind}' (onnxruntime and fil models)"
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        return "the BentoML service takes one input tensor and one output tensor"
    return None


_MLSERVER_RUNTIME = """
import os

if os.environ["TDEPLOY_MLSERVER_BASE"] == "lightgbm":
    from mlserver_lightgbm import LightGBMModel as Base
else:
    from mlserver_xgboost import XGBoostModel as Base

LOG = os.environ["TDEPLOY_BATCH_LOG"]


class CountingModel(Base):
    \"\"\"MLServer's own runtime; each call's rows are logged (did adaptive batching batch?).\"\"\"

    async def predict(self, payload):
        rows = max((int(i.shape[0]) for i in payload.inputs if i.shape), default=0)
        with open(LOG, "a") as log:
            log.write(f"{rows}\\n")
        return await super().predict(payload)
"""


def batch_log(service: ManagedProcess) -> Path | None:
    """The file where a peer's model writes the rows of each call it runs (one per line)."""
    path = service.extra.get("batch_log")
    return Path(str(path)) if path else None


def mlserver_service(
    info: ModelInfo, *, max_batch_time_s: float = 0.002, workers: int = 0
) -> ManagedProcess:
    env_spec = environment("mlserver")
    if not env_spec.ready():
        raise BenchError(env_spec.missing_reason())
    reason = unsupported_reason("mlserver", info)
    if reason:
        raise BenchError(f"MLServer: {reason}")
    work = tempfile.TemporaryDirectory(prefix="tdeploy-mlserver-")
    root = Path(work.name)
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    (root / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "host": "127.0.0.1",
                "http_port": http,
                "grpc_port": grpc_port,
                "metrics_port": metrics,
                "parallel_workers": workers,
            }
        )
    )
    (root / "tdeploy_mlserver_runtime.py").write_text(_MLSERVER_RUNTIME)
    runtime = "tdeploy_mlserver_runtime.CountingModel"
    model_dir = root / info.name
    model_dir.mkdir()
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": info.name,
                "implementation": runtime,
                "max_batch_size": info.max_batch_size,
                "max_batch_time": max_batch_time_s,
                "parameters": {"uri": str(_model_file(info).resolve())},
            }
        )
    )
    env = {
        **env_spec.environment(),
        "OMP_NUM_THREADS": "1",  # 2 cores: no OpenMP oversubscription
        "PYTHONPATH": str(root),
        "TDEPLOY_MLSERVER_BASE": "lightgbm" if _fil_type(info) == "lightgbm" else "xgboost",
        "TDEPLOY_BATCH_LOG": str(root / "batches.log"),
    }
    service = ManagedProcess(
        f"MLServer (parallel_workers {workers})",
        [str(env_spec.binary), "start", str(root)],
        f"http://127.0.0.1:{http}/v2/models/{info.name}/ready",
        env=env,
        cwd=root,
    )
    service.url = f"127.0.0.1:{grpc_port}"
    service.extra.update(batch_log=root / "batches.log", settings=f"parallel_workers {workers}")
    service._cleanup.append(work)
    return service


_BENTO_SERVICE = """
import os

import bentoml
import numpy as np

FRAMEWORK = os.environ["TDEPLOY_BENTO_FRAMEWORK"]
MODEL_FILE = os.environ["TDEPLOY_BENTO_MODEL_FILE"]
INPUT = os.environ["TDEPLOY_BENTO_INPUT"]
DTYPE = os.environ["TDEPLOY_BENTO_DTYPE"]
MAX_BATCH = int(os.environ["TDEPLOY_BENTO_MAX_BATCH"])
THREADS = int(os.environ.get("TDEPLOY_BENTO_THREADS", "1"))
WORKERS = int(os.environ.get("TDEPLOY_BENTO_WORKERS", "1"))
LOG = os.environ["TDEPLOY_BATCH_LOG"]


@bentoml.service(workers=WORKERS)
class TdeployModel:
    def __init__(self) -> None:
        if FRAMEWORK == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = THREADS
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(MODEL_FILE, options, providers=["CPUExecutionProvider"])
            self.run = lambda x: session.run(None, {INPUT: x})[0]
        elif FRAMEWORK == "lightgbm":
            import lightgbm

            booster = lightgbm.Booster(model_file=MODEL_FILE)
            self.run = lambda x: booster.predict(x, num_threads=THREADS)
        else:
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(MODEL_FILE)
            booster.set_param({"nthread": THREADS})
            self.run = lambda x: booster.inplace_predict(x, validate_features=False)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH)
    def predict(self, x: np.ndarray) -> np.ndarray:
        with open(LOG, "a") as log:  # the rows of each call: did adaptive batching batch?
            log.write(f"{len(x)}\\n")
        return np.asarray(self.run(np.ascontiguousarray(x, dtype=DTYPE)))
"""


def bentoml_service(info: ModelInfo, *, threads: int = 1, workers: int = 1) -> ManagedProcess:
    env_spec = environment("bentoml")
    if not env_spec.ready():
        raise BenchError(env_spec.missing_reason())
    reason = unsupported_reason("bentoml", info)
    if reason:
        raise BenchError(f"BentoML: {reason}")
    work = tempfile.TemporaryDirectory(prefix="tdeploy-bentoml-")
    root = Path(work.name)
    (root / "service.py").write_text(_BENTO_SERVICE)
    framework = (
        ("lightgbm" if _fil_type(info) == "lightgbm" else "xgboost")
        if info.kind == "fil"
        else "onnxruntime"
    )
    port = free_port()
    env = {
        **env_spec.environment(),
        "TDEPLOY_BENTO_FRAMEWORK": framework,
        "TDEPLOY_BENTO_MODEL_FILE": str(_model_file(info).resolve()),
        "TDEPLOY_BENTO_INPUT": info.inputs[0].name,
        "TDEPLOY_BENTO_DTYPE": np.dtype(info.inputs[0].numpy_dtype).name,
        "TDEPLOY_BENTO_MAX_BATCH": str(info.max_batch_size),
        "TDEPLOY_BENTO_THREADS": str(threads),
        "TDEPLOY_BENTO_WORKERS": str(workers),
        "TDEPLOY_BATCH_LOG": str(root / "batches.log"),
        "BENTOML_HOME": str(root / "home"),
        "OMP_NUM_THREADS": "1",
        "BENTOML_DO_NOT_TRACK": "true",
    }
    service = ManagedProcess(
        f"BentoML (workers {workers})",
        [
            str(env_spec.binary),
            "serve",
            "service:TdeployModel",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}/readyz",
        env=env,
        cwd=root,
    )
    service.url = f"http://127.0.0.1:{port}/predict"
    service.extra.update(batch_log=root / "batches.log", settings=f"workers {workers}")
    service._cleanup.append(work)
    return service
