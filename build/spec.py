"""The declarative build spec (``build/models.yaml``), validated with pydantic.

A spec names each model, where it comes from (a recipe function in ``triton_deploy.build.recipes``,
another model's ONNX, or a Python model file), its target backend, batching, instance groups,
verification tolerances and parameters, and the ensembles that chain them. A bad spec is a
``SpecError`` that names the file, the key and the reason.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from triton_deploy.errors import SpecError

__all__ = [
    "BuildSpec",
    "DynamicBatching",
    "EnsembleSpec",
    "EnsembleStep",
    "FilOptions",
    "InstanceGroup",
    "ModelSpec",
    "TensorRTOptions",
    "TensorSpec",
    "Tolerance",
    "load_spec",
]

DataType = Literal[
    "BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """A tensor without its batch dimension (as in config.pbtxt when max_batch_size > 0)."""

    name: Name
    dtype: DataType
    dims: list[int] = Field(min_length=1)

    @field_validator("dims")
    @classmethod
    def _dims(cls, dims: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in dims):
            raise ValueError("dims must be positive or -1 (variable)")
        return dims


class QueuePolicy(_Strict):
    """Overload gets fast rejections instead of unbounded latency."""

    max_queue_size: int = Field(256, ge=0)
    timeout_microseconds: int = Field(1_000_000, ge=0)
    allow_timeout_override: bool = True


class DynamicBatching(_Strict):
    enabled: bool = True
    preferred_batch_size: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    max_queue_delay_microseconds: int = Field(500, ge=0)
    preserve_ordering: bool = False
    # Off by default: with any default_queue_policy, Triton 2.51's dynamic batcher stalls
    # requests for ~500 ms under load (measured: `python -m triton_deploy.runtime.bench
    # --queue-policy`). Set it where bounded queues matter more than tail latency.
    queue: QueuePolicy | None = None


class InstanceGroup(_Strict):
    kind: Literal["KIND_AUTO", "KIND_CPU", "KIND_GPU"] = "KIND_AUTO"
    count: int = Field(1, ge=1, le=64)
    gpus: list[int] = Field(default_factory=list)


class Tolerance(_Strict):
    """Parity of a converted/served model with its source framework: |a - b| <= atol + rtol*|b|."""

    atol: float = Field(1e-5, ge=0)
    rtol: float = Field(1e-5, ge=0)


class FilOptions(_Strict):
    model_type: Literal["xgboost_json", "xgboost_ubj", "xgboost"] = "xgboost_json"
    output_class: bool = True
    predict_proba: bool = True
    threshold: float = Field(0.5, ge=0, le=1)
    proba_width: Literal[1, 2] = 1  # binary predict_proba: [p] or [1-p, p]
    use_experimental_optimizations: bool = False


class TensorRTOptions(_Strict):
    precision: Literal["fp32", "fp16"] = "fp16"
    workspace_mib: int = Field(1024, ge=64)
    opt_batch_size: int | None = Field(None, gt=0)  # default: half of max_batch_size


class VersionPolicy(_Strict):
    policy: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = Field(1, ge=1)
    versions: list[int] = Field(default_factory=list)


class ModelSpec(_Strict):
    name: Name
    backend: Literal["onnxruntime", "tensorrt", "fil", "python"]
    recipe: str | None = None  # "module:function" in triton_deploy.build.recipes
    onnx_from: Name | None = None  # tensorrt: build the plan from this onnxruntime model's ONNX
    python_model: str | None = None  # python: file in build/python_models/
    shared_code: list[str] = Field(default_factory=list)  # recipe modules copied beside model.py
    assets_from: str | None = None  # python: copy this recipe's assets (e.g. a vocabulary) too
    version: int = Field(1, ge=1)
    version_policy: VersionPolicy = VersionPolicy()
    max_batch_size: int = Field(64, ge=0)
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    dynamic_batching: DynamicBatching = DynamicBatching()
    instance_group: list[InstanceGroup] = Field(default_factory=lambda: [InstanceGroup()])
    parameters: dict[str, str] = Field(default_factory=dict)
    tolerance: Tolerance = Tolerance()
    warmup: bool = True
    fil: FilOptions | None = None
    tensorrt: TensorRTOptions | None = None
    opset: int = Field(18, ge=18, le=23)  # torch.onnx (dynamo) exports opset 18+

    @model_validator(mode="after")
    def _source(self) -> ModelSpec:
        need = {
            "onnxruntime": "recipe",
            "fil": "recipe",
            "tensorrt": "onnx_from",
            "python": "python_model",
        }
        key = need[self.backend]
        if getattr(self, key) is None:
            raise ValueError(f"backend '{self.backend}' needs '{key}'")
        if self.backend == "python" and not (self.inputs and self.outputs):
            raise ValueError(
                "backend 'python' needs 'inputs' and 'outputs' (they cannot be read from a file)"
            )
        if self.backend != "fil" and self.fil is not None:
            raise ValueError("'fil' options given for a model whose backend is not 'fil'")
        for key in ("recipe", "assets_from"):
            value = getattr(self, key)
            if value is not None and ":" not in value:
                raise ValueError(f"{key} {value!r} must be 'module:function'")
        too_big = [b for b in self.dynamic_batching.preferred_batch_size if b > self.max_batch_size]
        if too_big:
            raise ValueError(
                f"preferred_batch_size {too_big} exceeds max_batch_size {self.max_batch_size}"
            )
        return self


class EnsembleStep(_Strict):
    model: Name
    model_version: int = -1
    # model tensor name -> ensemble tensor name
    inputs: dict[str, Name]
    outputs: dict[str, Name]


class EnsembleSpec(_Strict):
    name: Name
    version: int = Field(1, ge=1)
    max_batch_size: int = Field(64, ge=0)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    steps: list[EnsembleStep] = Field(min_length=1)
    tolerance: Tolerance = Tolerance()


class BuildSpec(_Strict):
    seed: int = 0
    models: list[ModelSpec] = Field(min_length=1)
    ensembles: list[EnsembleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names(self) -> BuildSpec:
        names = [m.name for m in self.models] + [e.name for e in self.ensembles]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {dupes}")
        by_name = {m.name: m for m in self.models}
        for model in self.models:
            if model.onnx_from is not None:
                source = by_name.get(model.onnx_from)
                if source is None or source.backend != "onnxruntime":
                    raise ValueError(
                        f"model '{model.name}': onnx_from '{model.onnx_from}' is not an onnxruntime model of this spec"
                    )
        for ensemble in self.ensembles:
            for step in ensemble.steps:
                if step.model not in by_name:
                    raise ValueError(
                        f"ensemble '{ensemble.name}': step model '{step.model}' is not declared in models"
                    )
        return self

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """'models[2] (digits_cnn).max_batch_size' from a pydantic error location."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and "name" in node:
                    label += f" ({node['name']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def load_spec(path: Path) -> BuildSpec:
    """Read and validate a spec file; every problem is reported with file, key and reason."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a mapping with 'models' (and 'ensembles')")
    try:
        return BuildSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {_location(tuple(err['loc']), data)}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise SpecError("invalid build spec:\n" + "\n".join(problems)) from None
