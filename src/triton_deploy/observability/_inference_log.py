"""The inference log: one row per traced request, built from Triton's own trace files.

Nothing sits in the request path: Triton samples requests (``rate``), writes their timestamps
and, at level ``TENSORS``, their input and output tensors; this module turns those files into
rows and writes them as JSON lines, or Parquet when pyarrow is installed.

    records = read_inference_log([Path("/var/log/triton-trace")], tensors=True)
    write_jsonl(records, Path("inference_log.jsonl"))

What a row holds, and where it comes from:

- ``model``, ``version``, ``request_id``, ``trace_id``, ``parent_id`` (set for the steps of an
  ensemble: the ensemble's own row has the same request id);
- ``color``: from the file name the chart gives each pod's traces, ``<color>.json.N`` (or
  passed explicitly); None when unknown. ``source`` is the trace file (without its index);
- ``latency_us`` (REQUEST_START to REQUEST_END), ``queue_us`` (QUEUE_START to COMPUTE_START),
  ``compute_us`` (COMPUTE_START to COMPUTE_END); ``start_ns`` is Triton's steady clock
  (nanoseconds since boot), comparable within one server process only;
- ``status``: ``OK`` when the model produced outputs, ``FAILED`` when it took inputs and
  produced none. Only level ``TENSORS`` records tensors, so with ``TIMESTAMPS`` alone the status
  is ``UNKNOWN``. Requests rejected before they reach a model's queue (wrong shape or dtype,
  unknown model) never appear in Triton 2.51's trace files; ``/metrics`` does not count them
  either;
- ``batch_size``: the first dimension of the first input (for models that batch);
- ``inputs`` / ``outputs`` (opt-in): ``{name: {"dtype", "shape", "data"}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from triton_deploy.errors import ObservabilityError
from triton_deploy.observability._trace_file import (
    RawTrace,
    TraceTensor,
    read_trace_files,
    trace_series,
)

__all__ = [
    "CHART_TRACE_FILE",
    "InferenceLog",
    "InferenceRecord",
    "read_inference_log",
    "read_rows",
    "write_jsonl",
    "write_parquet",
]

Array = npt.NDArray[Any]

#: The name the chart gives each pod's trace files: ``<color>.json.N``.
CHART_TRACE_FILE = re.compile(r"^(?P<color>blue|green)\.json(?:\.\d+)?$")

STATUS_OK, STATUS_FAILED, STATUS_UNKNOWN = "OK", "FAILED", "UNKNOWN"


@dataclass
class InferenceRecord:
    """One model's handling of one request (see the module docstring for each field)."""

    model: str
    version: int
    trace_id: int
    status: str
    start_ns: int | None
    latency_us: float | None
    queue_us: float | None = None
    compute_us: float | None = None
    request_id: str | None = None
    parent_id: int | None = None
    batch_size: int | None = None
    color: str | None = None
    source: str | None = None
    inputs: dict[str, Array] | None = None
    outputs: dict[str, Array] | None = None
    dtypes: dict[str, str] = field(default_factory=dict)

    # -- rows ----------------------------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "color": self.color,
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "parent_id": self.parent_id,
            "status": self.status,
            "start_ns": self.start_ns,
            "latency_us": self.latency_us,
            "queue_us": self.queue_us,
            "compute_us": self.compute_us,
            "batch_size": self.batch_size,
            "source": self.source,
        }
        if self.inputs is not None:
            row["inputs"] = {k: self._tensor_row(k, v) for k, v in self.inputs.items()}
        if self.outputs is not None:
            row["outputs"] = {k: self._tensor_row(k, v) for k, v in self.outputs.items()}
        return row

    def _tensor_row(self, name: str, array: Array | None) -> dict[str, Any]:
        if array is None:
            return {"dtype": self.dtypes.get(name, ""), "shape": None, "data": None}
        data = array.reshape(-1).tolist()
        if array.dtype == object:
            data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in data]
        return {"dtype": self.dtypes.get(name, ""), "shape": list(array.shape), "data": data}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> InferenceRecord:
        dtypes: dict[str, str] = {}

        def tensors(key: str) -> dict[str, Array] | None:
            items = row.get(key)
            if items is None:
                return None
            out: dict[str, Array] = {}
            for name, t in items.items():
                dtypes[name] = t.get("dtype", "")
                if t.get("data") is None:
                    continue
                if t["dtype"] == "BYTES":
                    array = np.array([str(v).encode() for v in t["data"]], dtype=object)
                else:
                    array = np.array(t["data"], dtype=np.float64)
                out[name] = array.reshape(t["shape"])
            return out

        try:
            return cls(
                model=row["model"],
                version=int(row["version"]),
                trace_id=int(row["trace_id"]),
                status=row["status"],
                start_ns=row.get("start_ns"),
                latency_us=row.get("latency_us"),
                queue_us=row.get("queue_us"),
                compute_us=row.get("compute_us"),
                request_id=row.get("request_id"),
                parent_id=row.get("parent_id"),
                batch_size=row.get("batch_size"),
                color=row.get("color"),
                source=row.get("source"),
                inputs=tensors("inputs"),
                outputs=tensors("outputs"),
                dtypes=dtypes,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ObservabilityError(
                f"not an inference log row ({exc}): {str(row)[:120]}"
            ) from None


def _us(timestamps: dict[str, int], start: str, end: str) -> float | None:
    if start in timestamps and end in timestamps:
        return (timestamps[end] - timestamps[start]) / 1000.0
    return None


def record_from_trace(
    trace: RawTrace,
    *,
    tensors: bool,
    color: str | None = None,
    source: str | None = None,
) -> InferenceRecord:
    ts = trace.timestamps
    if trace.outputs:
        status = STATUS_OK
    elif trace.tensors_traced:
        status = STATUS_FAILED
    else:
        status = STATUS_UNKNOWN
    batch = None
    if trace.inputs:
        first = next(iter(trace.inputs.values()))
        batch = first.shape[0] if first.shape else None
    dtypes = {t.name: t.dtype for t in (*trace.inputs.values(), *trace.outputs.values())}

    def decode(items: dict[str, TraceTensor]) -> dict[str, Array]:
        return {name: t.values() for name, t in items.items()}  # type: ignore[misc]

    return InferenceRecord(
        model=trace.model,
        version=trace.version,
        trace_id=trace.id,
        status=status,
        start_ns=ts.get("REQUEST_START"),
        latency_us=_us(ts, "REQUEST_START", "REQUEST_END"),
        queue_us=_us(ts, "QUEUE_START", "COMPUTE_START"),
        compute_us=_us(ts, "COMPUTE_START", "COMPUTE_END"),
        request_id=trace.request_id,
        parent_id=trace.parent_id,
        batch_size=batch,
        color=color,
        source=source,
        inputs=decode(trace.inputs) if tensors and trace.tensors_traced else None,
        outputs=decode(trace.outputs) if tensors and trace.tensors_traced else None,
        dtypes=dtypes,
    )


@dataclass
class InferenceLog:
    """Rows read from trace files or row files, and the files not readable yet."""

    records: list[InferenceRecord]
    incomplete: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def models(self) -> list[str]:
        return sorted({r.model for r in self.records})


_ROW_SUFFIXES = (".jsonl", ".parquet")


def read_inference_log(
    paths: Sequence[Path], *, tensors: bool = True, color: str | None = None
) -> InferenceLog:
    """Rows from trace files, folders of them, or row files (``.jsonl``, ``.parquet``).

    ``color`` overrides the color read from chart file names (``<color>.json.N``).
    """
    paths = [Path(p) for p in paths]
    row_files = [p for p in paths if p.suffix in _ROW_SUFFIXES]
    trace_paths = [p for p in paths if p.suffix not in _ROW_SUFFIXES]
    records: list[InferenceRecord] = []
    for path in row_files:
        for rec in read_rows(path):
            if color is not None:
                rec.color = color
            if not tensors:
                rec.inputs = rec.outputs = None
            records.append(rec)
    incomplete: list[Path] = []
    if trace_paths:
        found = read_trace_files(trace_paths)
        incomplete = found.incomplete
        for path, trace in found:
            m = CHART_TRACE_FILE.match(path.name)
            records.append(
                record_from_trace(
                    trace,
                    tensors=tensors,
                    color=color or (m["color"] if m else None),
                    source=str(trace_series(path)),
                )
            )
    return InferenceLog(records, incomplete)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_jsonl(records: Iterable[InferenceRecord], path: Path) -> int:
    """JSON lines, one row per record; NaN and infinities as JSON's NaN/Infinity tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for rec in records:
            out.write(json.dumps(rec.to_row(), default=_json_default) + "\n")
            count += 1
    return count


def _parquet_tensors(items: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    if items is None:
        return None
    out = []
    for name, t in items.items():
        data = t["data"]
        is_text = t["dtype"] == "BYTES"
        out.append(
            {
                "name": name,
                "dtype": t["dtype"],
                "shape": t["shape"],
                "values": None if is_text or data is None else [float(v) for v in data],
                "strings": data if is_text else None,
            }
        )
    return out


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ObservabilityError(
            "Parquet needs pyarrow: pip install 'triton-deploy[monitor]' (or write JSON lines)"
        ) from None
    return pyarrow


def _parquet_schema(pa: Any) -> Any:
    tensor = pa.struct(
        [
            ("name", pa.string()),
            ("dtype", pa.string()),
            ("shape", pa.list_(pa.int64())),
            ("values", pa.list_(pa.float64())),
            ("strings", pa.list_(pa.string())),
        ]
    )
    return pa.schema(
        [
            ("model", pa.string()),
            ("version", pa.int64()),
            ("color", pa.string()),
            ("request_id", pa.string()),
            ("trace_id", pa.int64()),
            ("parent_id", pa.int64()),
            ("status", pa.string()),
            ("start_ns", pa.int64()),
            ("latency_us", pa.float64()),
            ("queue_us", pa.float64()),
            ("compute_us", pa.float64()),
            ("batch_size", pa.int64()),
            ("source", pa.string()),
            ("inputs", pa.list_(tensor)),
            ("outputs", pa.list_(tensor)),
        ]
    )


def write_parquet(records: Iterable[InferenceRecord], path: Path) -> int:
    """The same rows as Parquet (tensors as lists of {name, dtype, shape, values|strings})."""
    pa = _pyarrow()
    rows = []
    for rec in records:
        row = rec.to_row()
        row["inputs"] = _parquet_tensors(row.get("inputs"))
        row["outputs"] = _parquet_tensors(row.get("outputs"))
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pa.parquet.write_table(pa.Table.from_pylist(rows, schema=_parquet_schema(pa)), path)
    return len(rows)


def read_rows(path: Path) -> list[InferenceRecord]:
    """Rows written by ``write_jsonl`` or ``write_parquet``."""
    if not path.is_file():
        raise ObservabilityError(f"inference log {path} does not exist")
    if path.suffix == ".parquet":
        pa = _pyarrow()
        rows = pa.parquet.read_table(path).to_pylist()
        for row in rows:
            for key in ("inputs", "outputs"):
                if row.get(key) is not None:
                    row[key] = {
                        t["name"]: {
                            "dtype": t["dtype"],
                            "shape": t["shape"],
                            "data": t["strings"] if t["dtype"] == "BYTES" else t["values"],
                        }
                        for t in row[key]
                    }
        return [InferenceRecord.from_row(r) for r in rows]
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ObservabilityError(f"{path}:{number}: not a JSON line: {exc}") from None
            records.append(InferenceRecord.from_row(row))
    return records
