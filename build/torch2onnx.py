"""PyTorch files -> ONNX for the onnxruntime backend: dynamic batch axis, pinned opset, checked.

- torch.export archives (``.pt2``) go through the dynamo exporter, which keeps the program's
  symbolic batch dimension;
- TorchScript has no tensor metadata and the dynamo exporter cannot trace it, so it goes through
  the TorchScript exporter with the declared names and ``dynamic_axes`` on the batch axis.
Either way the result is checked with ``onnx.checker`` (full check) and must have the opset asked
for and a symbolic first dim on every tensor when the model batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.build.artifacts import (
    Artifact,
    Tensor,
    numpy_dtype,
    onnx_tensors,
    quiet_frameworks,
)
from triton_deploy.errors import ArtifactError

__all__ = ["example_inputs", "export_torch_export", "export_torchscript"]


def example_inputs(tensors: list[Tensor], batch: int = 2) -> list[np.ndarray]:
    """Small arrays of the tensors' shapes (batch axis and variable dims set to ``batch``)."""
    rng = np.random.default_rng(0)
    arrays = []
    for t in tensors:
        shape = tuple(batch if d == -1 else d for d in t.shape)
        dtype = numpy_dtype(t.dtype)
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype is np.bool_:
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, 2, shape).astype(dtype))
    return arrays


def _check(path: Path, opset: int, batching: bool) -> None:
    import onnx

    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    exported = {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")}
    if exported != {opset}:
        raise ArtifactError(
            f"{path}: asked for ONNX opset {opset}, the exporter wrote {sorted(exported)}"
        )
    if batching:
        for tensor in onnx_tensors(path, graph, "input") + onnx_tensors(path, graph, "output"):
            if not tensor.shape or tensor.shape[0] != -1:
                raise ArtifactError(
                    f"{path}: the exported tensor {tensor.describe()} has a fixed first dim; "
                    "the model cannot batch"
                )


def export_torch_export(artifact: Artifact, path: Path, *, opset: int, batching: bool) -> Path:
    """A torch.export program -> ONNX, tensors named as the artifact has them."""
    import torch

    program = artifact.info["program"]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet_frameworks():
            torch.onnx.export(
                program,
                (),
                str(path),
                input_names=[t.name for t in artifact.inputs],
                output_names=[t.name for t in artifact.outputs],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:
        raise ArtifactError(
            f"{artifact.path}: torch.onnx.export fails: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    _check(path, opset, batching)
    return path


def export_torchscript(artifact: Artifact, path: Path, *, opset: int, batching: bool) -> Path:
    """A TorchScript module -> ONNX through the TorchScript exporter (dynamo cannot trace it)."""
    import torch

    module: Any = artifact.info["module"]
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(torch.from_numpy(a) for a in example_inputs(artifact.inputs))
    names = [t.name for t in artifact.inputs + artifact.outputs]
    dynamic_axes = {name: {0: "batch"} for name in names} if batching else None
    try:
        with quiet_frameworks():
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=[t.name for t in artifact.inputs],
                output_names=[t.name for t in artifact.outputs],
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:
        raise ArtifactError(
            f"{artifact.path}: exporting the TorchScript module to ONNX fails "
            f"(are the declared inputs right?): {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    _check(path, opset, batching)
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
