"""PyTorch -> ONNX for the onnxruntime backend: dynamic batch axis, pinned opset, checked graph."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch

from triton_deploy.build.spec import TensorSpec
from triton_deploy.errors import BuildError

__all__ = ["export_onnx", "onnx_tensors", "run_onnx"]

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.DOUBLE: "FP64",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.BOOL: "BOOL",
}


def export_onnx(
    model: torch.nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    input_name: str,
    output_name: str,
    opset: int,
    max_batch_size: int,
) -> Path:
    """Export with the first axis dynamic (required for Triton's dynamic batching)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=max(max_batch_size, 2) * 16)
    model = model.eval()
    quiet = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(quiet),
        _silence("torch.onnx", "torch.export", "onnxscript"),
    ):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            opset_version=opset,
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    exported = {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")}
    if exported != {opset}:
        raise BuildError(
            f"{path}: asked for ONNX opset {opset}, the exporter wrote {sorted(exported)}"
        )
    for tensor in onnx_tensors(graph, "input") + onnx_tensors(graph, "output"):
        if tensor.dims and tensor.dims[0] != -1 and max_batch_size > 0:
            raise BuildError(
                f"{path}: tensor '{tensor.name}' has a fixed first dim; batching needs -1"
            )
    return path


@contextlib.contextmanager
def _silence(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def onnx_tensors(graph: onnx.ModelProto, kind: str) -> list[TensorSpec]:
    """Graph inputs or outputs as TensorSpecs, dims *with* the batch axis (-1 if symbolic)."""
    initializers = {i.name for i in graph.graph.initializer}
    tensors = []
    for value in getattr(graph.graph, kind):
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
        dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
        if dtype is None:
            raise BuildError(
                f"ONNX tensor '{value.name}': element type {tensor_type.elem_type} unsupported"
            )
        tensors.append(TensorSpec(name=value.name, dtype=dtype, dims=dims or [1]))
    return tensors


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a model file with onnxruntime in-process (CPU): the build's parity reference."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
