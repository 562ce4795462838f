"""Edits the build makes to an ONNX graph so that Triton 24.10 serves it, each one checked.

- **ZipMap** (skl2onnx's default classifier output, a sequence of maps, which Triton cannot
  serve): removed, and the probability tensor it wraps is served under the ZipMap output's
  name, class order as in its ``classlabels_*`` attribute; dropped altogether when the spec
  declares only other outputs.
- **Opset** newer than Triton 24.10's onnxruntime runs (ai.onnx > 21): converted down with
  ``onnx.version_converter``; the build's parity check then compares the converted file with
  the original. Only when the converter fails does the error name each exporter's option.
- **A fixed batch dim** (``torch.onnx.export`` without ``dynamic_axes`` exports batch 2):
  with ``dynamic_batch: true`` the first dim of every input and output becomes symbolic, which
  is proven at batch sizes 1 and 3 against the file itself, row by row.
- **Renames** (``rename: {old: new}``): inputs and outputs get the names clients should use.

Each edit works on the graph alone: external weights stay where they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.errors import ArtifactError

__all__ = [
    "EXPORTER_OPSET_OPTIONS",
    "TARGET_MAX_ML_OPSET",
    "ZipMap",
    "convert_opset",
    "default_opset",
    "find_zipmaps",
    "relax_batch",
    "remove_zipmaps",
    "rename_tensors",
    "zipmap_array",
]

#: Triton 24.10's onnxruntime (1.19) runs ai.onnx.ml opsets up to 4.
TARGET_MAX_ML_OPSET = 4
EXPORTER_OPSET_OPTIONS = (
    "torch.onnx.export(..., opset_version={opset}); skl2onnx to_onnx(..., "
    "target_opset={{'': {opset}, 'ai.onnx.ml': {ml}}}); tf2onnx --opset {opset}"
)


def default_opset(model: Any, domain: str = "") -> int:
    domains = ("", "ai.onnx") if domain == "" else (domain,)
    versions = [o.version for o in model.opset_import if o.domain in domains]
    return max(versions) if versions else 0


# -- ZipMap ------------------------------------------------------------------------------------
class ZipMap:
    """A ZipMap node feeding a graph output: the tensor it wraps and its class labels."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.output = node.output[0]
        self.wrapped = node.input[0]
        labels: list[Any] = []
        for attribute in node.attribute:
            if attribute.name == "classlabels_int64s":
                labels = list(attribute.ints)
            elif attribute.name == "classlabels_strings":
                labels = [s.decode() for s in attribute.strings]
        self.labels = labels


def find_zipmaps(model: Any) -> dict[str, ZipMap]:
    outputs = {o.name for o in model.graph.output}
    return {
        node.output[0]: ZipMap(node)
        for node in model.graph.node
        if node.op_type == "ZipMap" and node.output[0] in outputs
    }


def remove_zipmaps(model: Any, keep: set[str] | None) -> tuple[Any, list[str]]:
    """Each ZipMap output served as the tensor it wraps, or dropped when not in ``keep``."""
    import onnx

    zipmaps = find_zipmaps(model)
    if not zipmaps:
        return model, []
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    notes = []
    for name, zipmap in zipmaps.items():
        index = next(i for i, o in enumerate(graph.output) if o.name == name)
        node = next(n for n in graph.node if n.op_type == "ZipMap" and n.output[0] == name)
        graph.node.remove(node)
        del graph.output[index]
        if keep is not None and name not in keep:
            notes.append(f"ZipMap output '{name}' dropped (not declared)")
            continue
        # The wrapped tensor takes the output's name: rename its producer's output.
        for producer in graph.node:
            for i, out in enumerate(producer.output):
                if out == zipmap.wrapped:
                    producer.output[i] = name
            for i, inp in enumerate(producer.input):
                if inp == zipmap.wrapped:
                    producer.input[i] = name
        info = onnx.helper.make_tensor_value_info(
            name, onnx.TensorProto.FLOAT, [None, len(zipmap.labels) or None]
        )
        graph.output.insert(index, info)
        notes.append(f"ZipMap removed: '{name}' served as the probability tensor it wrapped")
    _fix_batch_dim_names(edited)
    return edited, notes


def _fix_batch_dim_names(model: Any) -> None:
    """Outputs made here have an unnamed first dim; give every unknown first dim one name."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value") and not dims[0].dim_param:
            dims[0].dim_param = "N"


def zipmap_array(value: Any, labels: list[Any]) -> np.ndarray:
    """ZipMap's list of {label: p} as the [N, classes] array it was made from."""
    return np.array([[row[label] for label in labels] for row in value], dtype=np.float32)


# -- opsets ------------------------------------------------------------------------------------
def convert_opset(path: Path, model: Any, target: int) -> Any:
    """``model`` converted to ai.onnx opset ``target`` (ai.onnx.ml must already be supported)."""
    import onnx
    from onnx import version_converter

    found = default_opset(model)
    ml = default_opset(model, "ai.onnx.ml")
    options = EXPORTER_OPSET_OPTIONS.format(opset=target, ml=min(ml or 3, TARGET_MAX_ML_OPSET))
    if ml > TARGET_MAX_ML_OPSET:
        raise ArtifactError(
            f"{path}: ai.onnx.ml opset {ml} is newer than Triton 24.10's onnxruntime runs "
            f"(<= {TARGET_MAX_ML_OPSET}) and onnx.version_converter cannot convert that domain: "
            f"re-export with {options}"
        )
    cleaned = onnx.ModelProto()
    cleaned.CopyFrom(model)
    # skl2onnx may list the default domain twice; the converter wants it once.
    seen: dict[str, Any] = {}
    for entry in cleaned.opset_import:
        key = "" if entry.domain == "ai.onnx" else entry.domain
        if key not in seen or entry.version > seen[key].version:
            seen[key] = entry
    kept = [(d, e.version) for d, e in seen.items()]
    del cleaned.opset_import[:]
    for domain, version in kept:
        cleaned.opset_import.append(onnx.helper.make_opsetid(domain, version))
    try:
        converted = version_converter.convert_version(cleaned, target)
        onnx.checker.check_model(converted)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"{path}: ONNX opset {found} is newer than Triton 24.10's onnxruntime runs "
            f"(<= {target}) and onnx.version_converter cannot convert it ({first}): "
            f"re-export with {options}"
        ) from None
    return converted


# -- batch axis --------------------------------------------------------------------------------
def relax_batch(model: Any) -> Any:
    """A copy of ``model`` whose inputs and outputs have a symbolic first dim."""
    import onnx

    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    initializers = {i.name for i in edited.graph.initializer}
    for value in list(edited.graph.input) + list(edited.graph.output):
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    # Intermediate shapes inferred with the old batch would contradict the new one.
    del edited.graph.value_info[:]
    return edited


def check_relaxed(
    path: Path,
    run_relaxed: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    run_original: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    feeds: dict[str, np.ndarray],
    fixed: int,
) -> None:
    """The relaxed model at batch 1 and 3 gives, row by row, what the file gives at ``fixed``."""
    for batch in (1, 3):
        rows = {
            k: np.concatenate([v] * (batch // max(len(v), 1) + 1))[:batch] for k, v in feeds.items()
        }
        try:
            got = run_relaxed(rows)
        except Exception as exc:
            raise ArtifactError(
                f"{path}: `dynamic_batch: true` but the graph fails at batch {batch} "
                f"({str(exc).strip().splitlines()[0]}): it depends on its fixed batch of {fixed}; "
                "re-export with a dynamic batch axis (torch.onnx.export(..., dynamo=True, "
                "dynamic_shapes=...) or dynamic_axes=...)"
            ) from None
        for start in range(batch):
            single = {k: np.repeat(v[start : start + 1], fixed, axis=0) for k, v in rows.items()}
            want = run_original(single)
            for name, value in want.items():
                if not np.allclose(got[name][start], value[0], atol=1e-5, rtol=1e-4):
                    raise ArtifactError(
                        f"{path}: `dynamic_batch: true` but output '{name}' changes with the "
                        f"batch size (batch {batch} differs from the file at batch {fixed}): the "
                        "graph mixes rows; re-export with a dynamic batch axis"
                    )


# -- names -------------------------------------------------------------------------------------
def rename_tensors(model: Any, mapping: dict[str, str]) -> Any:
    """A copy of ``model`` with graph inputs/outputs renamed (``old -> new``) everywhere."""
    import onnx

    if not mapping:
        return model
    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name in mapping:
            value.name = mapping[value.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for i, name in enumerate(node.output):
            if name in mapping:
                node.output[i] = mapping[name]
    return edited
