"""The model in-process: the repository's own model file, run by the framework its config names.

This is the ceiling of the hardware for a served model (no server, no IPC, no network), and
the engine of the naive microservice baseline. It reads the same files the backends read:
``onnxruntime_onnx`` / ``onnxruntime`` with ``default_model_filename`` (default ``model.onnx``)
and the config's thread parameters; ``fil`` with ``model_type`` (xgboost, xgboost_json,
xgboost_ubj with XGBoost; lightgbm with LightGBM) and ``cpu_nthread``. So it works for a
user's model as well as for the examples. Python-backend models and ensembles run only inside
Triton: for them ``load_in_process`` raises ``BenchError`` saying so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from triton_deploy.bench.payloads import BenchError, ModelInfo

__all__ = ["InProcessModel", "load_in_process", "measure_ceiling", "measure_latency"]

FIL_FILES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
}


class InProcessModel:
    """``model(inputs) -> outputs`` with numpy arrays keyed by the config's tensor names."""

    def __init__(
        self,
        info: ModelInfo,
        framework: str,
        path: Path,
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    ) -> None:
        self.info = info
        self.framework = framework
        self.path = path
        self._run = run

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(inputs)

    def __repr__(self) -> str:
        return f"InProcessModel({self.info.name!r}, {self.framework}, {self.path})"


def _parameters(info: ModelInfo) -> dict[str, str]:
    return {k: v.string_value for k, v in info.config.parameters.items()}


def _onnx(info: ModelInfo) -> InProcessModel:
    import onnxruntime as ort

    path = info.version_directory() / (info.config.default_model_filename or "model.onnx")
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise BenchError(f"model '{info.name}': ONNX file {path} not found")
    parameters = _parameters(info)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(parameters.get("intra_op_thread_count") or 0)
    options.inter_op_num_threads = int(parameters.get("inter_op_thread_count") or 0)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = [t.name for t in info.outputs]
    dtypes = {t.name: t.numpy_dtype for t in info.inputs}

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: np.asarray(v, dtype=dtypes[k]) for k, v in inputs.items()}
        return dict(zip(outputs, session.run(outputs, feed), strict=True))

    return InProcessModel(info, f"onnxruntime {ort.__version__}", path, run)


def _fil(info: ModelInfo) -> InProcessModel:
    parameters = _parameters(info)
    model_type = parameters.get("model_type", "xgboost")
    if model_type not in FIL_FILES:
        raise BenchError(
            f"model '{info.name}': fil model_type {model_type!r} has no in-process runner "
            f"(supported: {', '.join(FIL_FILES)})"
        )
    path = info.version_directory() / (info.config.default_model_filename or FIL_FILES[model_type])
    if not path.is_file():
        raise BenchError(f"model '{info.name}': model file {path} not found")
    nthread = int(parameters.get("cpu_nthread") or -1)
    output = info.outputs[0].name
    if model_type == "lightgbm":
        import lightgbm

        booster = lightgbm.Booster(model_file=str(path))

        def predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(booster.predict(x, num_threads=max(nthread, 0)))

        framework = f"lightgbm {lightgbm.__version__}"
    else:
        import xgboost

        xgb_booster = xgboost.Booster()
        xgb_booster.load_model(str(path))
        xgb_booster.set_param({"nthread": nthread})

        # The served backend's own XGBoost call (the C API with prepared arguments), so the
        # ceiling is as fast as the framework gets and the comparison stays like for like.
        from triton_deploy.runtime.backends.tdeploy_xgboost import fast_predictor

        fast = fast_predictor(xgb_booster)

        def predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(fast(x))

        framework = f"xgboost {xgboost.__version__}"
    name = info.inputs[0].name

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(inputs[name], dtype=np.float32)
        values = predict(x.reshape(len(x), -1)).astype(np.float32)
        return {output: values.reshape(len(x), -1)}

    return InProcessModel(info, framework, path, run)


def load_in_process(info: ModelInfo) -> InProcessModel:
    """The model's own file with its framework, or ``BenchError`` saying why that cannot be."""
    kind = info.kind
    if kind in ("onnxruntime_onnx", "onnxruntime"):
        return _onnx(info)
    if kind == "fil":
        return _fil(info)
    if kind == "ensemble":
        raise BenchError(
            f"model '{info.name}' is an ensemble: its Python steps run only inside Triton"
        )
    raise BenchError(f"model '{info.name}': backend '{kind}' has no in-process runner")


def _batch(rows: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    n = len(next(iter(rows.values())))
    index = np.arange(batch) % n
    return {k: v[index] for k, v in rows.items()}


def measure_ceiling(
    model: InProcessModel, rows: dict[str, np.ndarray], batch: int, seconds: float = 1.0
) -> float:
    """Samples/s of back-to-back calls at ``batch`` rows each: the best of five rounds.

    Each round's rate is taken over wall time and over this process's CPU time, whichever is
    higher: on a shared machine other processes only ever take time away, so the CPU-time rate
    is what one core does undisturbed (for a single-threaded framework call), and the best
    round is the least disturbed one.
    """
    batch = max(1, batch)
    inputs = _batch(rows, batch) if model.info.max_batch_size > 0 else rows
    model(inputs)
    best = 0.0
    for _ in range(5):
        calls = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds / 5:
            model(inputs)
            calls += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        best = max(best, calls * batch / wall, calls * batch / cpu if cpu > 0 else 0.0)
    return best


def measure_latency(
    model: InProcessModel, rows: dict[str, np.ndarray], seconds: float = 1.0
) -> dict[str, float]:
    """p50/p90/p99 in ms of single-row calls (the in-process side of serving overhead)."""
    inputs = [
        _batch({k: v[i:] for k, v in rows.items()}, 1)
        for i in range(min(64, len(next(iter(rows.values())))))
    ]
    model(inputs[0])
    times: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        began = time.perf_counter()
        model(inputs[len(times) % len(inputs)])
        times.append((time.perf_counter() - began) * 1e3)
    values = np.asarray(times)
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99)}
