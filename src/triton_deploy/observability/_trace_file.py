"""Read what Triton 2.51 really writes in ``triton`` trace mode.

The trace file is meant to be JSON (a list of records, see Triton's docs/user_guide/trace.md):

    {"id":1,"model_name":"m","model_version":1,"request_id":"r","parent_id":7}
    {"id":1,"timestamps":[{"name":"REQUEST_START","ns":742601847774}]}
    {"id":1,"activity":"TENSOR_QUEUE_INPUT","tensor":{"name":"x","data":"0,1.5","shape":"1,2","dtype":"FP32"}}

but the server writes it with ``operator<<`` and escapes nothing (server ``src/tracer.cc``):
UINT8 and INT8 elements come out as raw bytes (so any image input makes the file invalid JSON),
BYTES elements and request ids are written between quotes without escaping, FP16/BF16 data is
left empty, and floats have 6 significant digits. ``json.loads`` fails on such files, so they
are scanned record by record here, and each tensor is decoded from its dtype and shape.

Files: ``FILE`` (log-frequency 0: written at exit) or ``FILE.0``, ``FILE.1``, ... (one per
``log-frequency`` traces). A trace and the traces of the models it called (ensemble steps,
``parent_id``) are always written to the same file. A file still being written (no closing
``]``) is reported as incomplete and skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from triton_deploy.errors import ObservabilityError

__all__ = [
    "RawTrace",
    "TraceFileSet",
    "TraceTensor",
    "find_trace_files",
    "parse_trace_text",
    "read_trace_files",
]

Array = npt.NDArray[Any]

# Record heads and bodies as tracer.cc writes them. A record ends where the next one starts
# (",{"id":"), or at the closing "]": bodies that may hold arbitrary bytes are matched lazily up
# to that boundary.
_END = rb"(?=\s*(?:,\s*\{\"id\":|\]\s*\Z|\Z))"
_HEAD = re.compile(rb'\s*[\[,]?\s*\{"id":(\d+),')
_INFO = re.compile(
    rb'"model_name":"(?P<model>[^"]*)","model_version":(?P<version>-?\d+)'
    rb'(?:,"request_id":"(?P<request_id>.*?)")?(?:,"parent_id":(?P<parent>\d+))?\}' + _END,
    re.DOTALL,
)
_TIMESTAMP = re.compile(rb'"timestamps":\[\{"name":"(?P<name>[A-Z0-9_]+)","ns":(?P<ns>\d+)\}\]\}')
_TENSOR = re.compile(
    rb'"activity":"(?P<activity>[A-Z_]+)","tensor":\{"name":"(?P<name>[^"]*)",'
    rb'"data":"(?P<data>.*?)","shape":"(?P<shape>[-0-9,]*)","dtype":"(?P<dtype>[A-Z0-9]+)"\}\}'
    + _END,
    re.DOTALL,
)
_INDEXED = re.compile(r"^(?P<stem>.+)\.(?P<index>\d+)$")

_FLOATS = {"FP32": np.float32, "FP64": np.float64}
_INTS = {
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
# Written with operator<< on (u)int8_t: one raw byte per element.
_CHARS = {"UINT8": np.uint8, "INT8": np.int8}


@dataclass(frozen=True)
class TraceTensor:
    """One traced tensor as written: ``values()`` decodes it (None when Triton left no data)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @property
    def element_count(self) -> int:
        return math.prod(self.shape)

    def values(self) -> Array | None:
        n = self.element_count
        try:
            if self.dtype in ("FP16", "BF16"):
                return None  # tracer.cc writes no data for these
            if n == 0:
                return np.zeros(self.shape, dtype=object if self.dtype == "BYTES" else np.float32)
            if self.dtype in _CHARS:
                if len(self.data) != 2 * n - 1:
                    raise ValueError(f"{len(self.data)} bytes for {n} elements")
                return np.frombuffer(self.data[::2], dtype=_CHARS[self.dtype]).reshape(self.shape)
            if self.dtype == "BYTES":
                return np.array(_split_bytes(self.data, n), dtype=object).reshape(self.shape)
            items = self.data.decode("ascii").split(",")
            if self.dtype in _FLOATS:
                return (
                    np.array(items, dtype=np.float64)
                    .astype(_FLOATS[self.dtype])
                    .reshape(self.shape)
                )
            if self.dtype in _INTS:
                return np.array(items, dtype=np.int64).astype(_INTS[self.dtype]).reshape(self.shape)
            if self.dtype == "BOOL":
                return np.array(items, dtype=np.int64).astype(bool).reshape(self.shape)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ObservabilityError(
                f"tensor {self.name!r} ({self.dtype}, shape {list(self.shape)}): "
                f"data does not decode: {exc}"
            ) from None
        raise ObservabilityError(f"tensor {self.name!r}: unknown dtype {self.dtype!r}")


def _split_bytes(data: bytes, n: int) -> list[bytes]:
    # Each element is written as \"<raw bytes>\" and elements are joined with ",".
    if not (data.startswith(b'\\"') and data.endswith(b'\\"')) or len(data) < 4:
        raise ValueError("BYTES elements are not quoted as Triton writes them")
    parts = data[2:-2].split(b'\\",\\"')
    if len(parts) != n:
        raise ValueError(
            f"found {len(parts)} elements, the shape says {n} (an element holds '\\\",\\\"')"
        )
    return parts


@dataclass
class RawTrace:
    """Everything Triton recorded for one trace id: one model's handling of one request."""

    id: int
    model: str = ""
    version: int = -1
    request_id: str | None = None
    parent_id: int | None = None
    timestamps: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, TraceTensor] = field(default_factory=dict)
    outputs: dict[str, TraceTensor] = field(default_factory=dict)
    # TENSOR_BACKEND_INPUT records (what the backend received), kept apart from queue inputs.
    backend_inputs: dict[str, TraceTensor] = field(default_factory=dict)
    tensors_traced: bool = False


def parse_trace_text(raw: bytes, *, source: str = "<trace>") -> list[RawTrace]:
    """Every trace in one trace file's bytes, in order of first appearance."""
    traces: dict[int, RawTrace] = {}
    pos = 0
    end = len(raw.rstrip())
    if raw.strip() in (b"", b"[]"):
        return []
    while pos < end:
        head = _HEAD.match(raw, pos)
        if head is None:
            tail = raw[pos:end].strip()
            if tail in (b"]", b""):
                break
            raise ObservabilityError(
                f"{source}: not a Triton trace file: unexpected {tail[:40]!r} at byte {pos}"
            )
        trace_id = int(head.group(1))
        trace = traces.setdefault(trace_id, RawTrace(trace_id))
        body = head.end()
        if (m := _TIMESTAMP.match(raw, body)) is not None:
            trace.timestamps.setdefault(m["name"].decode(), int(m["ns"]))
        elif (m := _TENSOR.match(raw, body)) is not None:
            shape = tuple(int(d) for d in m["shape"].split(b",") if d)
            tensor = TraceTensor(
                m["name"].decode("utf-8", "replace"), m["dtype"].decode(), shape, m["data"]
            )
            activity = m["activity"].decode()
            target = {
                "TENSOR_QUEUE_INPUT": trace.inputs,
                "TENSOR_BACKEND_OUTPUT": trace.outputs,
                "TENSOR_BACKEND_INPUT": trace.backend_inputs,
            }.get(activity)
            if target is None:
                raise ObservabilityError(f"{source}: unknown tensor activity {activity!r}")
            target[tensor.name] = tensor
            trace.tensors_traced = True
        elif (m := _INFO.match(raw, body)) is not None:
            trace.model = m["model"].decode("utf-8", "replace")
            trace.version = int(m["version"])
            if m["request_id"] is not None:
                trace.request_id = m["request_id"].decode("utf-8", "replace")
            if m["parent"] is not None:
                trace.parent_id = int(m["parent"])
        else:
            at = raw.index(b"{", head.start())
            raise ObservabilityError(
                f"{source}: unreadable trace record at byte {at}: {raw[at : at + 80]!r}"
            )
        pos = m.end()
    # A child trace (an ensemble step) carries no request id of its own when the request had one.
    for trace in traces.values():
        if trace.parent_id is not None and trace.request_id is None:
            parent = traces.get(trace.parent_id)
            if parent is not None:
                trace.request_id = parent.request_id
    return [t for t in traces.values() if t.model]


def find_trace_files(paths: Iterable[Path]) -> list[Path]:
    """Trace files named by ``paths``: files as given, folders searched for ``*.json[.N]``.

    Ordered by file, then by index, so traces come in the order Triton wrote them.
    """
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and _is_trace_name(p.name)]
        elif path.is_file():
            found.append(path)
        else:
            raise ObservabilityError(f"trace file or folder {path} does not exist")
    return sorted(dict.fromkeys(found), key=_order)


def _is_trace_name(name: str) -> bool:
    m = _INDEXED.match(name)
    return (m["stem"] if m else name).endswith(".json")


def _order(path: Path) -> tuple[str, int]:
    m = _INDEXED.match(path.name)
    if m and m["stem"].endswith(".json"):
        return (str(path.with_name(m["stem"])), int(m["index"]))
    return (str(path), -1)


def trace_series(path: Path) -> Path:
    """The trace file a (possibly indexed) file belongs to: ``x.json.3`` -> ``x.json``."""
    m = _INDEXED.match(path.name)
    return path.with_name(m["stem"]) if m and m["stem"].endswith(".json") else path


@dataclass
class TraceFileSet:
    """The traces of several files, and what could not be read yet."""

    traces: list[tuple[Path, RawTrace]]
    incomplete: list[Path]

    def __iter__(self) -> Iterator[tuple[Path, RawTrace]]:
        return iter(self.traces)


def read_trace_files(paths: Iterable[Path]) -> TraceFileSet:
    """Parse every trace file under ``paths`` (see ``find_trace_files``)."""
    traces: list[tuple[Path, RawTrace]] = []
    incomplete: list[Path] = []
    for path in find_trace_files(paths):
        raw = path.read_bytes()
        if raw.strip() and not raw.lstrip().startswith(b"["):
            raise ObservabilityError(f"{path}: not a Triton trace file (no JSON list)")
        if raw.strip() and not raw.rstrip().endswith(b"]"):
            incomplete.append(path)  # Triton is still writing it
            continue
        traces += [(path, t) for t in parse_trace_text(raw, source=str(path))]
    return TraceFileSet(traces, incomplete)
