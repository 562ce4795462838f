"""Artifacts: a model file read into what the build needs, whatever trained it.

``read_artifact`` turns a file of any supported format into one typed ``Artifact``: its format
and path, its input and output tensors (names, dtypes, shapes with -1 for a symbolic dim; the
first dim is the batch axis when the model batches), and ``reference``, a function that runs the
file with its own framework in-process (onnxruntime, torch, xgboost, lightgbm). Tensors come
from the file: ONNX graph inputs/outputs, the torch.export graph signature and example shapes,
the tree model's feature and class counts. Declared ``inputs:``/``outputs:`` in the spec
override them and are checked against the file; a mismatch names both.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.build.fil import FilPlan, TreeModel, fil_output, plan_fil, read_tree_model
from triton_deploy.build.formats import Format
from triton_deploy.build.spec import FilOptions, ModelSpec, TensorSpec
from triton_deploy.errors import ArtifactError

__all__ = [
    "TARGET_MAX_OPSET",
    "Artifact",
    "Reference",
    "Tensor",
    "config_tensors",
    "numpy_dtype",
    "onnx_session",
    "read_artifact",
    "run_onnx",
]

Reference = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
#: Triton 24.10's onnxruntime (1.19) runs ONNX opsets up to 21.
TARGET_MAX_OPSET = 21

_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


def numpy_dtype(dtype: str) -> Any:
    return _NUMPY[dtype]


@dataclass(frozen=True)
class Tensor:
    """A model tensor with its full shape as the model sees it (-1: symbolic)."""

    name: str
    dtype: str  # a Triton data type without TYPE_ (FP32, INT64, BYTES, ...)
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.name} {self.dtype} {list(self.shape)}"


@dataclass
class Artifact:
    """A model file, its tensors and its own framework as the reference."""

    format: Format | None  # None for Python models (a .py file, not a model format)
    path: Path
    inputs: list[Tensor]
    outputs: list[Tensor]
    reference: Reference | None
    # Details that later steps need: the tree model and its FIL plan, the ONNX opset, ...
    info: dict[str, Any] = field(default_factory=dict)

    def external_files(self) -> list[str]:
        """Files beside ``path`` that the model reads too (ONNX external data), relative."""
        external = self.info.get("external")
        return list(external.files) if external is not None else []

    @property
    def tree(self) -> TreeModel:
        return self.info["tree"]

    @property
    def fil(self) -> FilPlan:
        return self.info["fil"]


@contextlib.contextmanager
def quiet_frameworks() -> Iterator[None]:
    """Silence exporters' and loaders' chatter (warnings, prints, INFO logs)."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "torch")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# -- tensors: the file's, reconciled with the spec's ----------------------------------------------
def _declared_shape(spec: TensorSpec, batching: bool) -> tuple[int, ...]:
    dims = tuple(spec.reshape if spec.reshape is not None else spec.dims)
    return (-1, *dims) if batching else dims


def _merge_shape(
    path: Path, kind: str, found: Tensor, declared: TensorSpec, batching: bool
) -> Tensor:
    shape = _declared_shape(declared, batching)
    if found.dtype != declared.dtype:
        raise ArtifactError(
            f"{path}: {kind} '{declared.name}' is declared {declared.dtype} but the file has "
            f"{found.describe()}"
        )
    if len(shape) != len(found.shape):
        raise ArtifactError(
            f"{path}: {kind} '{declared.name}' is declared with shape {list(shape)} "
            f"(dims {declared.dims}{' plus the batch axis' if batching else ''}) but the file "
            f"has {found.describe()}"
        )
    merged = []
    for index, (have, want) in enumerate(zip(found.shape, shape, strict=True)):
        if have != -1 and want != -1 and have != want:
            raise ArtifactError(
                f"{path}: {kind} '{declared.name}' dim {index} is declared {want} but the file "
                f"has {have} ({found.describe()})"
            )
        merged.append(want if index or not batching else have)
    return Tensor(declared.name, declared.dtype, tuple(merged))


def reconcile(
    path: Path,
    kind: str,
    found: list[Tensor],
    declared: list[TensorSpec],
    *,
    batching: bool,
    positional: bool,
) -> list[Tensor]:
    """The file's tensors with the spec's declarations applied (checked against the file).

    ONNX tensors are matched by name (the file's names are served); torch tensors by position
    (the ONNX export gives them the declared names).
    """
    if not declared:
        return found
    if positional:
        if len(declared) != len(found):
            raise ArtifactError(
                f"{path}: {len(declared)} {kind}s declared ({[d.name for d in declared]}) but "
                f"the file has {len(found)} ({[t.describe() for t in found]})"
            )
        return [
            _merge_shape(path, kind, t, d, batching) for t, d in zip(found, declared, strict=True)
        ]
    by_name = {t.name: t for t in found}
    for d in declared:
        if d.name not in by_name:
            raise ArtifactError(
                f"{path}: declared {kind} '{d.name}' is not in the file (its {kind}s: "
                f"{[t.describe() for t in found]})"
            )
    overrides = {d.name: d for d in declared}
    return [
        _merge_shape(path, kind, t, overrides[t.name], batching) if t.name in overrides else t
        for t in found
    ]


def check_batch_axis(path: Path, tensors: list[Tensor], max_batch_size: int) -> None:
    if max_batch_size < 1:
        return
    for tensor in tensors:
        if not tensor.shape or tensor.shape[0] != -1:
            raise ArtifactError(
                f"{path}: tensor {tensor.describe()} has a fixed first dim, but max_batch_size "
                f"is {max_batch_size} (Triton batches along a dynamic first dim): re-export with "
                "a dynamic batch axis (torch.export.Dim / dynamic_axes), or set "
                "`max_batch_size: 0` to serve it unbatched"
            )


def config_tensors(tensors: list[Tensor], max_batch_size: int) -> list[TensorSpec]:
    """Model tensors as config.pbtxt declares them (batch axis left out when batching)."""
    specs = []
    for t in tensors:
        dims = list(t.shape[1:] if max_batch_size > 0 else t.shape)
        if dims:
            specs.append(TensorSpec(name=t.name, dtype=t.dtype, dims=dims))
        else:  # only the batch axis: Triton wants dims [1] and the model's shape []
            specs.append(TensorSpec(name=t.name, dtype=t.dtype, dims=[1], reshape=[]))
    return specs


def declared_tensors(specs: list[TensorSpec], max_batch_size: int) -> list[Tensor]:
    return [Tensor(s.name, s.dtype, _declared_shape(s, max_batch_size > 0)) for s in specs]


# -- ONNX --------------------------------------------------------------------------------------
def _onnx_dtype(path: Path, name: str, elem_type: int) -> str:
    import onnx

    names: dict[int, str] = {
        onnx.TensorProto.FLOAT: "FP32",
        onnx.TensorProto.FLOAT16: "FP16",
        onnx.TensorProto.DOUBLE: "FP64",
        onnx.TensorProto.INT64: "INT64",
        onnx.TensorProto.INT32: "INT32",
        onnx.TensorProto.INT16: "INT16",
        onnx.TensorProto.INT8: "INT8",
        onnx.TensorProto.UINT8: "UINT8",
        onnx.TensorProto.UINT16: "UINT16",
        onnx.TensorProto.UINT32: "UINT32",
        onnx.TensorProto.UINT64: "UINT64",
        onnx.TensorProto.BOOL: "BOOL",
        onnx.TensorProto.STRING: "BYTES",
    }
    if elem_type not in names:
        type_name = onnx.TensorProto.DataType.Name(elem_type) if elem_type else "undefined"
        raise ArtifactError(f"{path}: tensor '{name}' has element type {type_name}, unsupported")
    return names[elem_type]


def onnx_tensors(path: Path, graph: Any, kind: str) -> list[Tensor]:
    """Graph inputs or outputs (initializers left out), -1 for every symbolic dim."""
    initializers = {i.name for i in graph.graph.initializer}
    tensors = []
    for value in getattr(graph.graph, kind):
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise ArtifactError(f"{path}: {kind} '{value.name}' is not a tensor (sequence/map)")
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        tensors.append(
            Tensor(value.name, _onnx_dtype(path, value.name, tensor_type.elem_type), shape)
        )
    return tensors


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a model file with onnxruntime in-process (CPU)."""
    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            str(path), _session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        message = str(exc).split(" : ", 2)[-1].strip()
        raise ArtifactError(
            f"{path}: onnxruntime {ort.__version__} cannot load it: {message}"
        ) from None


def _non_tensor_outputs(model: Any) -> list[str]:
    return [o.name for o in model.graph.output if not o.type.HasField("tensor_type")]


def _drop_outputs(model: Any, names: set[str]) -> Any:
    import onnx

    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    for index in reversed(range(len(edited.graph.output))):
        if edited.graph.output[index].name in names:
            del edited.graph.output[index]
    return edited


def _fixed_batch(tensors: list[Tensor]) -> int | None:
    """The fixed first dim shared by every tensor (torch.onnx.export's batch of 2), if any."""
    firsts = {t.shape[0] if t.shape else None for t in tensors}
    if len(firsts) == 1:
        (first,) = firsts
        if first is not None and first > 0:
            return int(first)
    return None


def _read_onnx(path: Path, model: ModelSpec) -> Artifact:
    """An ONNX file, its external data checked, with the edits Triton 24.10 needs planned
    (``onnx_edits``): ZipMap removed, opset converted down, batch axis relaxed, renames."""
    import onnx

    from triton_deploy.build import onnx_edits as edits
    from triton_deploy.build.onnx_files import external_data, graph_session, load_graph

    graph = load_graph(path)
    data = external_data(path, graph)
    try:  # by path: external data and models over 2 GB are checked where they are
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: fails onnx.checker: {first}") from None
    session = onnx_session(path)  # also proves the pinned onnxruntime can load it
    notes: list[str] = []
    if data.files:
        from triton_deploy.build.onnx_files import INLINE_LIMIT

        how = "inlined" if data.total_bytes < INLINE_LIMIT else "copied alongside model.onnx"
        notes.append(f"external data {data.describe()}: {how}")
    back = {new: old for old, new in model.rename.items()}
    declared = {back.get(t.name, t.name) for t in model.outputs} if model.outputs else None
    zipmaps = edits.find_zipmaps(graph)
    edited, zipmap_notes = edits.remove_zipmaps(graph, declared)
    notes += zipmap_notes
    others = _non_tensor_outputs(edited)
    if others and declared is not None and not (set(others) & declared):
        edited = _drop_outputs(edited, set(others))
        notes.append(f"non-tensor output(s) {others} dropped (not declared)")
    elif others:
        raise ArtifactError(
            f"{path}: output(s) {others} are sequences or maps, which Triton cannot serve: "
            "declare only the tensor outputs in `outputs:` to drop them, or re-export without "
            "them"
        )
    opset = edits.default_opset(edited)
    ml_opset = edits.default_opset(edited, "ai.onnx.ml")
    if opset > TARGET_MAX_OPSET or ml_opset > edits.TARGET_MAX_ML_OPSET:
        edited = edits.convert_opset(path, edited, min(opset, TARGET_MAX_OPSET))
        notes.append(f"opset {opset} converted to {TARGET_MAX_OPSET} (onnx.version_converter)")
    file_inputs = onnx_tensors(path, edited, "input")
    file_outputs = onnx_tensors(path, edited, "output")
    fixed = _fixed_batch(file_inputs + file_outputs)
    original_names = [o.name for o in session.get_outputs()]
    input_names = [t.name for t in file_inputs]

    def run_file(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = session.run(original_names, {n: feeds[n] for n in input_names})
        out = {}
        for name, value in zip(original_names, values, strict=True):
            if name in zipmaps:
                value = edits.zipmap_array(value, zipmaps[name].labels)
            out[name] = value
        return out

    run_source: Reference = run_file
    if model.dynamic_batch:
        if fixed is None:
            raise ArtifactError(
                f"{path}: `dynamic_batch: true`, but the file's tensors have no common fixed "
                f"first dim ({[t.describe() for t in file_inputs + file_outputs]}): remove "
                "`dynamic_batch`"
            )
        edited = edits.relax_batch(edited)
        relaxed = graph_session(edited, data, _session_options())
        relaxed_names = [o.name for o in relaxed.get_outputs()]

        def run_relaxed(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            values = relaxed.run(relaxed_names, {n: feeds[n] for n in input_names})
            return dict(zip(relaxed_names, values, strict=True))

        probe = {
            t.name: v for t, v in zip(file_inputs, _example_rows(file_inputs, fixed), strict=True)
        }
        edits.check_relaxed(path, run_relaxed, run_file, probe, fixed)
        run_source = _in_chunks(run_file, fixed)
        notes.append(f"fixed batch {fixed} made dynamic (checked at batch 1 and 3)")
        file_inputs = onnx_tensors(path, edited, "input")
        file_outputs = onnx_tensors(path, edited, "output")
    if model.rename:
        unknown = sorted(set(model.rename) - {t.name for t in file_inputs + file_outputs})
        if unknown:
            raise ArtifactError(
                f"{path}: `rename:` names {unknown}, which are not inputs or outputs of the file "
                f"(inputs {input_names}, outputs {[t.name for t in file_outputs]})"
            )
        edited = edits.rename_tensors(edited, model.rename)
        file_inputs = [
            Tensor(model.rename.get(t.name, t.name), t.dtype, t.shape) for t in file_inputs
        ]
        file_outputs = [
            Tensor(model.rename.get(t.name, t.name), t.dtype, t.shape) for t in file_outputs
        ]
    batching = model.max_batch_size > 0
    inputs = reconcile(
        path, "input", file_inputs, model.inputs, batching=batching, positional=False
    )
    outputs = reconcile(
        path, "output", file_outputs, model.outputs, batching=batching, positional=False
    )
    names = [t.name for t in outputs]
    renamed = {new: old for old, new in model.rename.items()}

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = {renamed.get(t.name, t.name): feeds[t.name] for t in inputs}
        values = run_source(given)
        return {name: values[renamed.get(name, name)] for name in names}

    info = {
        "opset": min(opset, TARGET_MAX_OPSET),
        "graph": edited,
        "external": data,
        "notes": notes,
    }
    return Artifact(Format.ONNX, path, inputs, outputs, reference, info)


def _session_options() -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    return options


def _example_rows(tensors: list[Tensor], rows: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for t in tensors:
        shape = tuple(rows if i == 0 else (d if d > 0 else 4) for i, d in enumerate(t.shape))
        dtype = numpy_dtype(t.dtype)
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        else:
            arrays.append(rng.integers(0, 2, shape).astype(dtype))
    return arrays


def _in_chunks(run: Reference, fixed: int) -> Reference:
    """``run`` (a model that takes exactly ``fixed`` rows) on any number of rows."""

    def chunked(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = next(iter(feeds.values())).shape[0]
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, rows, fixed):
            chunk = {k: v[start : start + fixed] for k, v in feeds.items()}
            taken = next(iter(chunk.values())).shape[0]
            if taken < fixed:  # pad with copies of the last row, drop them after
                chunk = {
                    k: np.concatenate([v, np.repeat(v[-1:], fixed - taken, axis=0)])
                    for k, v in chunk.items()
                }
            for name, value in run(chunk).items():
                parts.setdefault(name, []).append(value[:taken])
        return {name: np.concatenate(values) for name, values in parts.items()}

    return chunked


# -- PyTorch -----------------------------------------------------------------------------------
_TORCH_DTYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}


def _torch_dtype(path: Path, name: str, dtype: Any) -> str:
    key = str(dtype).removeprefix("torch.")
    if key not in _TORCH_DTYPES:
        raise ArtifactError(f"{path}: tensor '{name}' has dtype {key}, unsupported by Triton")
    return _TORCH_DTYPES[key]


def _fake_shape(value: Any) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else -1 for d in value.shape)


def _flatten(result: Any) -> list[Any]:
    if isinstance(result, (tuple, list)):
        return [item for part in result for item in _flatten(part)]
    return [result]


def _torch_reference(
    module: Any, inputs: list[Tensor], outputs: list[Tensor], in_spec: Any = None
) -> Reference:
    """The module on numpy feeds; with a torch.export ``in_spec`` the flat inputs are put back
    into the program's (args, kwargs) shape, and any pytree output is flattened."""
    import torch
    from torch.utils import _pytree

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        flat = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in inputs]
        with torch.no_grad():
            if in_spec is not None:
                args, kwargs = _pytree.tree_unflatten(flat, in_spec)
                result = module(*args, **kwargs)
            else:
                result = module(*flat)
        values = _pytree.tree_leaves(result)
        return {t.name: v.detach().numpy() for t, v in zip(outputs, values, strict=True)}

    return reference


def output_names(spec: Any) -> list[str]:
    """Names for the leaves of a torch.export output pytree, from its keys: ``logits``,
    ``hidden_states.0``; a lone tensor is ``output``, a top-level tuple ``output_0``, ..."""
    import dataclasses

    def children(node: Any) -> list[Any]:
        method = getattr(node, "children", None)  # torch >= 2.10; children_specs before
        return list(method()) if callable(method) else list(node.children_specs)

    def keys(node: Any) -> list[str]:
        context, kids = node.context, children(node)
        if (
            isinstance(context, (list, tuple))
            and len(context) == len(kids)
            and all(isinstance(k, (str, int)) for k in context)
        ):
            return [str(k) for k in context]
        if isinstance(context, type) and hasattr(context, "_fields"):  # namedtuple
            return list(context._fields)
        if dataclasses.is_dataclass(node.type):
            fields = [f.name for f in dataclasses.fields(node.type)]
            if len(fields) == len(kids):
                return fields
        return [str(i) for i in range(len(kids))]

    def walk(node: Any, prefix: str) -> list[str]:
        if node.is_leaf():
            return [prefix]
        names = []
        for key, child in zip(keys(node), children(node), strict=True):
            names += walk(child, f"{prefix}.{key}" if prefix else key)
        return names

    if spec.is_leaf():
        return ["output"]
    names = walk(spec, "")
    return [name if name[:1].isalpha() else f"output_{name}" for name in names]


_UNREGISTERED = re.compile(r"Deserializing ([\w.]+) in pytree is not registered")


def _load_program(path: Path, model: ModelSpec) -> Any:
    """``torch.export.load`` after the spec's ``pre_import`` modules, with the real cause of a
    failure (torch logs it as a warning and raises a generic error)."""
    import importlib

    import torch

    for module in model.pre_import:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ArtifactError(
                f"{path}: pre_import '{module}' cannot be imported ({type(exc).__name__}: {exc}); "
                "install the package that defines it"
            ) from None
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())
            if record.exc_info:
                records.append(logging.Formatter().formatException(record.exc_info))

    handler = Capture(logging.WARNING)
    logger = logging.getLogger("torch.export")
    propagate = logger.propagate
    logger.addHandler(handler)
    try:
        with quiet_frameworks():
            logger.setLevel(logging.WARNING)  # captured here only, not printed
            logger.propagate = False
            return torch.export.load(str(path))
    except Exception as exc:
        found = _UNREGISTERED.search("\n".join(records) + str(exc))
        if found:
            type_name = found.group(1)
            module = type_name.rsplit(".", 1)[0]
            raise ArtifactError(
                f"{path}: its outputs use the pytree type {type_name}, which is not registered "
                f"here: add `pre_import: [{module}]` to the model's spec entry (the module "
                "registers it when imported), or make forward() return a tensor, tuple or dict"
            ) from None
        raise ArtifactError(f"{path}: torch.export.load fails: {_first_line_of(exc)}") from None
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _first_line_of(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_torch_export(path: Path, model: ModelSpec) -> Artifact:
    program = _load_program(path, model)
    signature = program.graph_signature
    nodes = {n.name: n for n in program.graph.nodes}
    found_inputs = []
    for name in signature.user_inputs:
        value = nodes[name].meta.get("val")
        if value is None or not hasattr(value, "shape"):
            raise ArtifactError(f"{path}: input '{name}' is not a tensor")
        found_inputs.append(
            Tensor(
                model.rename.get(name, name),
                _torch_dtype(path, name, value.dtype),
                _fake_shape(value),
            )
        )
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    found_outputs = []
    # Graph names (linear_13) give way to the pytree's keys (logits, hidden_states.0).
    names = output_names(program.call_spec.out_spec)
    if len(names) != len(signature.user_outputs):
        names = [str(n) for n in signature.user_outputs]
    names = [model.rename.get(n, n) for n in names]
    for name, node in zip(names, _flatten(output_node.args[0]), strict=False):
        value = getattr(node, "meta", {}).get("val")
        if value is None or not hasattr(value, "shape"):
            raise ArtifactError(f"{path}: output '{name}' is not a tensor")
        found_outputs.append(
            Tensor(str(name), _torch_dtype(path, str(name), value.dtype), _fake_shape(value))
        )
    batching = model.max_batch_size > 0
    inputs = reconcile(
        path, "input", found_inputs, model.inputs, batching=batching, positional=True
    )
    outputs = reconcile(
        path, "output", found_outputs, model.outputs, batching=batching, positional=True
    )
    module = program.module()
    return Artifact(
        Format.TORCH_EXPORT,
        path,
        inputs,
        outputs,
        _torch_reference(module, inputs, outputs, program.call_spec.in_spec),
        {"program": program},
    )


def _read_torchscript(path: Path, model: ModelSpec) -> Artifact:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ArtifactError(
            f"{path}: torch.jit.load fails: {str(exc).strip().splitlines()[0]}"
        ) from None
    # TorchScript has no tensor metadata: the spec's declarations are the tensors.
    inputs = declared_tensors(model.inputs, model.max_batch_size)
    outputs = declared_tensors(model.outputs, model.max_batch_size)
    return Artifact(
        Format.TORCHSCRIPT,
        path,
        inputs,
        outputs,
        _torch_reference(module, inputs, outputs),
        {"module": module},
    )


# -- trees -------------------------------------------------------------------------------------
def _read_trees(path: Path, fmt: Format, model: ModelSpec) -> Artifact:
    tree = read_tree_model(path, fmt)
    plan = plan_fil(tree, model.fil or FilOptions())
    found_inputs = [Tensor("input__0", "FP32", (-1, tree.n_features))]
    found_outputs = [Tensor("output__0", "FP32", (-1, plan.width))]
    batching = model.max_batch_size > 0
    if not batching:
        raise ArtifactError(
            f"{path}: FIL serves tree models with a batch dimension: set max_batch_size >= 1"
        )
    inputs = reconcile(path, "input", found_inputs, model.inputs, batching=True, positional=False)
    outputs = reconcile(
        path, "output", found_outputs, model.outputs, batching=True, positional=False
    )

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        features = np.asarray(feeds["input__0"], dtype=np.float32)
        return {"output__0": fil_output(tree.predict(features), tree.task, plan)}

    info: dict[str, Any] = {"tree": tree, "fil": plan}
    if tree.categories:
        info["synthesize"] = _category_samples(tree, model.categorical == "strings")
    if model.categorical == "strings":
        if not tree.categories:
            raise ArtifactError(
                f"{path}: `categorical: strings` but the model has no categorical features"
            )
        unnamed = [i for i, names in tree.categories.items() if not names]
        if unnamed:
            raise ArtifactError(
                f"{path}: categorical feature(s) {unnamed} carry no category names in the file "
                "(trained on codes): use `categorical: codes`, or train on a pandas category "
                "column so the names are saved with the model"
            )
        to_codes = categories_to_codes(tree)
        numeric = [i for i in range(tree.n_features) if i not in tree.categories]
        inputs = [Tensor("categories", "BYTES", (-1, len(tree.categories)))]
        if numeric:
            inputs.insert(0, Tensor("numeric", "FP32", (-1, len(numeric))))

        def from_strings(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return reference({"input__0": to_codes(feeds)})

        return Artifact(fmt, path, inputs, outputs, from_strings, info)
    return Artifact(fmt, path, inputs, outputs, reference, info)


def _category_samples(
    tree: TreeModel, strings: bool
) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Synthetic samples with valid categories: integer codes, or the names."""

    def fix(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(0)
        samples = dict(samples)
        if strings:
            columns = [
                rng.choice(
                    np.array([n.encode() for n in tree.categories[i]], dtype=object),
                    len(samples["categories"]),
                )
                for i in sorted(tree.categories)
            ]
            samples["categories"] = np.stack(columns, axis=1).astype(object)
            return samples
        x = samples["input__0"].copy()
        for index, names in tree.categories.items():
            x[:, index] = rng.integers(0, max(len(names), 2), x.shape[0]).astype(np.float32)
        samples["input__0"] = x
        return samples

    return fix


def categories_to_codes(tree: TreeModel) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """(numeric, categories) feeds -> the FIL feature matrix (unknown category: NaN)."""
    categorical = sorted(tree.categories)
    numeric = [i for i in range(tree.n_features) if i not in tree.categories]
    codes = [
        {name.encode(): float(code) for code, name in enumerate(tree.categories[i])}
        for i in categorical
    ]

    def convert(feeds: dict[str, np.ndarray]) -> np.ndarray:
        strings = np.asarray(feeds["categories"])
        x = np.full((strings.shape[0], tree.n_features), np.nan, dtype=np.float32)
        if numeric:
            x[:, numeric] = np.asarray(feeds["numeric"], dtype=np.float32)
        for column, (index, table) in enumerate(zip(categorical, codes, strict=True)):
            values = [v if isinstance(v, bytes) else str(v).encode() for v in strings[:, column]]
            x[:, index] = [table.get(v, np.nan) for v in values]
        return x

    return convert


def read_artifact(path: Path, fmt: Format, model: ModelSpec) -> Artifact:
    """Read ``path`` (already identified as ``fmt``) for ``model``; see the module docstring."""
    if fmt is Format.ONNX:
        artifact = _read_onnx(path, model)
    elif fmt is Format.TORCH_EXPORT:
        artifact = _read_torch_export(path, model)
    elif fmt is Format.TORCHSCRIPT:
        artifact = _read_torchscript(path, model)
    elif fmt is Format.HUGGINGFACE:
        from triton_deploy.build.hf import read_hf_folder

        artifact = read_hf_folder(path, model)
    elif fmt.family == "sklearn":
        from triton_deploy.build.sklearn import read_sklearn

        artifact = read_sklearn(path, fmt, model)
    else:
        artifact = _read_trees(path, fmt, model)
    check_batch_axis(path, artifact.inputs + artifact.outputs, model.max_batch_size)
    return artifact
