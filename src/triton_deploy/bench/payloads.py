"""What the bench sends: any model of any repository, described by its own config.

Inputs come from the build's golden cases (real held-out rows, ``load_golden_cases``) when the
repository has them for the model, else they are synthesised from the config (dtype and dims;
a variable dim becomes 1). Requests are encoded once, before the clock starts: a
``ModelInferRequest`` serialised to bytes for gRPC (so the load generator spends no time on
protobuf), a JSON body for HTTP services.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2
from tritonclient.utils import serialize_byte_tensor, triton_to_np_dtype

from triton_deploy.errors import TritonDeployError
from triton_deploy.repository import RepositoryModel, read_repository, request_inputs
from triton_deploy.repository import datatype as _datatype

__all__ = [
    "BenchError",
    "ModelInfo",
    "TensorInfo",
    "grpc_requests",
    "json_bodies",
    "model_info",
    "sample_rows",
]


class BenchError(TritonDeployError):
    """The bench or the tuner cannot do what was asked (names the model and the reason)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str  # Triton's name: FP32, INT64, BYTES, ...
    dims: tuple[int, ...]  # without the batch dimension when the model batches

    @property
    def numpy_dtype(self) -> Any:
        return triton_to_np_dtype(self.datatype)


@dataclass(frozen=True)
class ModelInfo:
    """A model of the repository as the bench sees it (from its config.pbtxt)."""

    name: str
    path: Path
    config: mc.ModelConfig
    members: tuple[str, ...]  # every model an ensemble runs (recursively), else ()

    @property
    def kind(self) -> str:
        return self.config.platform or self.config.backend

    @property
    def is_ensemble(self) -> bool:
        return self.kind == "ensemble"

    @property
    def max_batch_size(self) -> int:
        return int(self.config.max_batch_size)

    @property
    def dynamic_batching(self) -> bool:
        return self.config.HasField("dynamic_batching")

    @property
    def inputs(self) -> list[TensorInfo]:
        return [
            TensorInfo(t.name, _datatype(t.data_type), tuple(t.dims)) for t in self.config.input
        ]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [
            TensorInfo(t.name, _datatype(t.data_type), tuple(t.dims)) for t in self.config.output
        ]

    def version_directory(self) -> Path:
        """The newest numeric version folder (what the default ``latest`` policy serves)."""
        versions = sorted(
            (p for p in self.path.iterdir() if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
        )
        if not versions:
            raise BenchError(f"model '{self.name}': no version folder in {self.path}")
        return versions[-1]


def _members(models: dict[str, RepositoryModel], name: str) -> tuple[str, ...]:
    found: list[str] = []
    for member in models[name].ensemble_members:
        if member in models and member not in found:
            found.append(member)
            found.extend(m for m in _members(models, member) if m not in found)
    return tuple(found)


def model_info(repository: Path, name: str) -> ModelInfo:
    models = read_repository(Path(repository))
    if name not in models:
        raise BenchError(
            f"model '{name}' is not in {repository} (it has: {', '.join(sorted(models))})"
        )
    model = models[name]
    return ModelInfo(name, model.path, model.config, _members(models, name))


def sample_rows(
    repository: Path, info: ModelInfo, *, rows: int = 256, seed: int = 0
) -> tuple[dict[str, np.ndarray], str]:
    """Input rows for ``info`` and where they came from ("golden cases" or "synthetic (from
    the config)"): ``triton_deploy.repository.request_inputs``.

    For a batching model every array has the rows on axis 0; for a model without batching the
    arrays are one whole request.
    """
    inputs = request_inputs(Path(repository), info.name, rows=rows, seed=seed, config=info.config)
    return inputs.arrays, inputs.origin


def _batches(info: ModelInfo, arrays: dict[str, np.ndarray], batch: int, count: int) -> list[dict]:
    if info.max_batch_size <= 0:
        return [arrays]
    n = len(next(iter(arrays.values())))
    out = []
    for i in range(min(count, max(1, n))):
        index = np.arange(i * batch, (i + 1) * batch) % n
        out.append({k: v[index] for k, v in arrays.items()})
    return out


def grpc_requests(
    info: ModelInfo, arrays: dict[str, np.ndarray], *, batch: int = 1, count: int = 64
) -> list[bytes]:
    """Serialised ``ModelInferRequest`` messages of ``batch`` rows each (raw tensor contents)."""
    messages = []
    by_name = {t.name: t for t in info.inputs}
    for request in _batches(info, arrays, batch, count):
        message = service_pb2.ModelInferRequest(model_name=info.name)
        for name, value in request.items():
            tensor = message.inputs.add(
                name=name, datatype=by_name[name].datatype, shape=list(value.shape)
            )
            del tensor  # the contents go in raw_input_contents, in the same order
            if by_name[name].datatype == "BYTES":
                raw = serialize_byte_tensor(value)
                message.raw_input_contents.append(raw.item() if raw.size else b"")
            else:
                message.raw_input_contents.append(
                    np.ascontiguousarray(value, dtype=by_name[name].numpy_dtype).tobytes()
                )
        messages.append(message.SerializeToString())
    return messages


def _jsonable(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [
            (
                _jsonable(v)
                if isinstance(v, np.ndarray)
                else v.decode()
                if isinstance(v, bytes)
                else v
            )
            for v in value
        ]
    return value.tolist()


def json_bodies(
    info: ModelInfo,
    arrays: dict[str, np.ndarray],
    *,
    batch: int = 1,
    count: int = 64,
    wrap: str | None = "inputs",
) -> list[bytes]:
    """JSON bodies ``{"inputs": {name: nested list}}`` (or the bare mapping when wrap is None)."""
    bodies = []
    for request in _batches(info, arrays, batch, count):
        mapping = {name: _jsonable(value) for name, value in request.items()}
        bodies.append(json.dumps({wrap: mapping} if wrap else mapping).encode())
    return bodies
