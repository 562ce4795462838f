"""Run a Triton Python model (``model.py``) in-process, outside Triton.

The build needs the outputs a Python model gives for real inputs: as golden cases for
``tdeploy verify`` and as a step of an ensemble's reference. ``PythonModelRunner`` loads the
model file exactly as it was copied into the repository (beside its shared code and assets)
with a small stand-in for ``triton_python_backend_utils`` that provides what ordinary models
use (tensors, requests, responses, errors, config helpers). Models that call other models
(BLS) or stream responses (decoupled) cannot run here; the runner says so.

``check_python_model`` parses a file without running it: it must define ``TritonPythonModel``
with an ``execute`` method.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.errors import ArtifactError

__all__ = ["PythonModelRunner", "check_python_model", "model_config_json"]


def check_python_model(path: Path) -> None:
    """A Triton Python model file: valid UTF-8 Python that defines TritonPythonModel.execute."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: not UTF-8 text, so not a Python model") from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise ArtifactError(f"{path}: not valid Python (line {exc.lineno}: {exc.msg})") from None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "TritonPythonModel":
            methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            if "execute" not in methods:
                raise ArtifactError(f"{path}: class TritonPythonModel has no execute() method")
            return
    raise ArtifactError(f"{path}: not a Triton Python model: it defines no class TritonPythonModel")


def model_config_json(config: mc.ModelConfig) -> str:
    """The config as Triton hands it to ``initialize``: JSON with numbers for int64 fields."""
    data = json_format.MessageToDict(config, preserving_proto_field_name=True)

    def numbers(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ([int(x) for x in v] if k in ("dims", "shape") else numbers(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [numbers(x) for x in node]
        return node

    return json.dumps(numbers(data))


class _HarnessError(Exception):
    pass


def _stub_module() -> types.ModuleType:
    """A stand-in for ``triton_python_backend_utils`` (the parts ordinary models use)."""
    module = types.ModuleType("triton_python_backend_utils")

    class TritonModelException(Exception):
        pass

    class TritonError:
        UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS = range(
            7
        )
        CANCELLED = 7

        def __init__(self, message: str, code: int = 1) -> None:
            self._message, self._code = message, code

        def message(self) -> str:
            return self._message

        def code(self) -> int:
            return self._code

    class Tensor:
        def __init__(self, name: str, array: Any) -> None:
            self._name, self._array = name, np.asarray(array)

        def name(self) -> str:
            return self._name

        def as_numpy(self) -> np.ndarray:
            return self._array

        def is_cpu(self) -> bool:
            return True

    class InferenceRequest:
        def __init__(self, inputs: list[Tensor], requested: list[str]) -> None:
            self._inputs, self._requested = inputs, requested

        def inputs(self) -> list[Tensor]:
            return self._inputs

        def requested_output_names(self) -> list[str]:
            return self._requested

        def request_id(self) -> str:
            return ""

        def correlation_id(self) -> int:
            return 0

        def flags(self) -> int:
            return 0

        def parameters(self) -> str:
            return "{}"

        def is_cancelled(self) -> bool:
            return False

        def exec(self, *args: Any, **kwargs: Any) -> Any:
            raise _HarnessError(
                "the model calls other models (BLS), which cannot run outside Triton"
            )

        async_exec = exec

        def get_response_sender(self) -> Any:
            raise _HarnessError(
                "the model is decoupled (streams responses), which cannot run outside Triton"
            )

    class InferenceResponse:
        def __init__(
            self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None
        ) -> None:
            self._outputs, self._error = list(output_tensors or []), error

        def output_tensors(self) -> list[Tensor]:
            return self._outputs

        def has_error(self) -> bool:
            return self._error is not None

        def error(self) -> TritonError | None:
            return self._error

    class Logger:
        @staticmethod
        def log(message: str, level: int = 0) -> None:
            pass

        log_info = log_warn = log_error = log_verbose = log

    def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
        return next((t for t in request.inputs() if t.name() == name), None)

    def get_output_tensor_by_name(response: InferenceResponse, name: str) -> Tensor | None:
        return next((t for t in response.output_tensors() if t.name() == name), None)

    def _config_by_name(config: dict[str, Any], kind: str, name: str) -> dict[str, Any] | None:
        return next((t for t in config.get(kind, []) if t.get("name") == name), None)

    def triton_string_to_numpy(name: str) -> Any:
        table = {
            "TYPE_BOOL": np.bool_,
            "TYPE_UINT8": np.uint8,
            "TYPE_UINT16": np.uint16,
            "TYPE_UINT32": np.uint32,
            "TYPE_UINT64": np.uint64,
            "TYPE_INT8": np.int8,
            "TYPE_INT16": np.int16,
            "TYPE_INT32": np.int32,
            "TYPE_INT64": np.int64,
            "TYPE_FP16": np.float16,
            "TYPE_FP32": np.float32,
            "TYPE_FP64": np.float64,
            "TYPE_STRING": np.object_,
        }
        return table[name]

    for name, value in {
        "TritonModelException": TritonModelException,
        "TritonError": TritonError,
        "Tensor": Tensor,
        "InferenceRequest": InferenceRequest,
        "InferenceResponse": InferenceResponse,
        "Logger": Logger,
        "get_input_tensor_by_name": get_input_tensor_by_name,
        "get_output_tensor_by_name": get_output_tensor_by_name,
        "get_input_config_by_name": lambda c, n: _config_by_name(c, "input", n),
        "get_output_config_by_name": lambda c, n: _config_by_name(c, "output", n),
        "triton_string_to_numpy": triton_string_to_numpy,
        "TRITONSERVER_REQUEST_FLAG_SEQUENCE_START": 1,
        "TRITONSERVER_REQUEST_FLAG_SEQUENCE_END": 2,
    }.items():
        setattr(module, name, value)
    return module


class PythonModelRunner:
    """``model.py`` of ``model_directory/<version>/``, initialised as Triton would, in-process."""

    def __init__(self, model_directory: Path, version: int, config: mc.ModelConfig) -> None:
        self.directory = model_directory / str(version)
        self.config = config
        self.inputs = [t.name for t in config.input]
        self.outputs = [t.name for t in config.output]
        self._stub = _stub_module()
        path = self.directory / "model.py"
        local = {p.stem for p in self.directory.glob("*.py")}
        saved_modules = {k: sys.modules.pop(k) for k in list(sys.modules) if k in local}
        saved_path = list(sys.path)
        before = set(sys.modules)
        sys.modules["triton_python_backend_utils"] = self._stub
        try:
            spec = importlib.util.spec_from_file_location(f"tdeploy_python_model_{id(self)}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.model = module.TritonPythonModel()
            if hasattr(self.model, "initialize"):
                self.model.initialize(
                    {
                        "model_config": model_config_json(config),
                        "model_instance_kind": "CPU",
                        "model_instance_name": f"{config.name}_0_0",
                        "model_instance_device_id": "0",
                        "model_repository": str(model_directory),
                        "model_version": str(version),
                        "model_name": config.name,
                    }
                )
        except Exception as exc:
            raise ArtifactError(
                f"{path}: the Python model fails to load in-process: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            # Forget the modules loaded from this model's folder (another model may have its
            # own file of the same name), never third-party ones.
            for name in set(sys.modules) - before:
                origin = getattr(sys.modules[name], "__file__", None) or ""
                if origin.startswith(str(self.directory)):
                    sys.modules.pop(name, None)
            sys.modules.pop("triton_python_backend_utils", None)
            sys.modules.update(saved_modules)
            sys.path[:] = saved_path

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = int(next(iter(feeds.values())).shape[0]) if feeds else 0
        step = max(self.config.max_batch_size, 1) if self.config.max_batch_size > 0 else rows or 1
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        stub = self._stub
        for start in range(0, max(rows, 1), step):
            request = stub.InferenceRequest(
                [stub.Tensor(n, feeds[n][start : start + step]) for n in self.inputs], self.outputs
            )
            try:
                (response,) = self.model.execute([request])
            except _HarnessError as exc:
                raise ArtifactError(f"{self.directory / 'model.py'}: {exc}") from None
            except Exception as exc:
                raise ArtifactError(
                    f"{self.directory / 'model.py'}: execute() raised {type(exc).__name__}: {exc}"
                ) from exc
            if response.has_error():
                raise ArtifactError(
                    f"{self.directory / 'model.py'}: the model rejected rows {start}.."
                    f"{min(start + step, rows) - 1}: {response.error().message()}"
                )
            for name in self.outputs:
                tensor = stub.get_output_tensor_by_name(response, name)
                if tensor is None:
                    raise ArtifactError(
                        f"{self.directory / 'model.py'}: execute() returned no output '{name}'"
                    )
                parts[name].append(tensor.as_numpy())
        return {name: np.concatenate(values) for name, values in parts.items()}

    def close(self) -> None:
        if hasattr(self.model, "finalize"):
            self.model.finalize()
