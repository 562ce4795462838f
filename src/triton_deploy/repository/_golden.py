"""Golden cases: real inputs and the outputs the source framework computed for them at build time.

The build keeps one ``GoldenCase`` per served model and ensemble, inside the repository as
``<repository>/<model>/golden.npz`` (Triton ignores files there), so the cases travel with the
repository and are replaced with it atomically. ``tdeploy verify`` sends the inputs to a live
server and compares, ``tdeploy monitor`` uses them as the reference distribution, the bench as
realistic payloads. Only numpy is needed to read them, and no pickle: strings (BYTES tensors)
are stored as raw bytes plus offsets.

    cases = load_golden_cases(Path("model_repository"))   # {model name: GoldenCase}
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._layout import GOLDEN_FILE


def _pack(prefix: str, name: str, value: np.ndarray, out: dict[str, np.ndarray]) -> None:
    if value.dtype == object:
        items = [v if isinstance(v, bytes) else str(v).encode() for v in value.reshape(-1)]
        out[f"{prefix}.{name}.bytes"] = np.frombuffer(b"".join(items), dtype=np.uint8)
        out[f"{prefix}.{name}.offsets"] = np.cumsum([0, *(len(v) for v in items)], dtype=np.int64)
        out[f"{prefix}.{name}.shape"] = np.array(value.shape, dtype=np.int64)
    else:
        out[f"{prefix}.{name}"] = value


def pack_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Arrays as npz entries under ``prefix``; object arrays of bytes without pickle."""
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        _pack(prefix, name, np.asarray(value), out)
    return out


def unpack_arrays(prefix: str, data: Any) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    start = prefix + "."
    for key in data.files:
        if not key.startswith(start):
            continue
        rest = key[len(start) :]
        if rest.endswith(".bytes"):
            name = rest[: -len(".bytes")]
            raw = data[key].tobytes()
            offsets = data[f"{start}{name}.offsets"]
            shape = tuple(int(d) for d in data[f"{start}{name}.shape"])
            items = [raw[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
            value = np.empty(len(items), dtype=object)
            value[:] = items
            arrays[name] = value.reshape(shape)
        elif not rest.endswith((".offsets", ".shape")):
            arrays[rest] = data[key]
    return arrays


@dataclass
class GoldenCase:
    """Inputs for one served model and the outputs its source framework gives for them."""

    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    # Outputs compared exactly (integers, booleans, strings); others within the tolerance.
    exact: list[str] = field(default_factory=list)
    atol: float = 1e-5
    rtol: float = 1e-5

    def save(self, path: Any) -> None:
        arrays = pack_arrays("in", self.inputs) | pack_arrays("out", self.expected)
        arrays["exact"] = np.array(self.exact, dtype=np.str_)
        arrays["tolerance"] = np.array([self.atol, self.rtol], dtype=np.float64)
        # Archive in memory, then one write: numpy's ZipFile left half-written by a failed write
        # (a full disk) would raise again from its destructor, long after the real error.
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with open(path, "wb") as handle:
            handle.write(buffer.getbuffer())

    @classmethod
    def load(cls, path: Any) -> GoldenCase:
        with np.load(path, allow_pickle=False) as data:
            inputs = unpack_arrays("in", data)
            expected = unpack_arrays("out", data)
            exact = [str(x) for x in data["exact"]]
            atol, rtol = (
                (float(data["tolerance"][0]), float(data["tolerance"][1]))
                if "tolerance" in data.files
                else (1e-5, 1e-5)
            )
        return cls(inputs, expected, exact, atol, rtol)

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0]) if self.inputs else 0


def golden_case_path(repository: Path, model: str) -> Path:
    return Path(repository) / model / GOLDEN_FILE


def artifacts_directory(repository: Path) -> Path:
    """Deprecated: golden cases now live inside the repository (see ``golden_case_path``)."""
    return Path(repository).resolve()


def load_golden_cases(repository: Path) -> dict[str, GoldenCase]:
    """Every golden case the last build of ``repository`` kept, by model name."""
    return {
        path.parent.name: GoldenCase.load(path)
        for path in sorted(Path(repository).glob(f"*/{GOLDEN_FILE}"))
    }


def _exact(value: np.ndarray) -> bool:
    return value.dtype.kind in "biuOSU"


def parity(served: np.ndarray, reference: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    """|served - reference| <= atol + rtol * |reference| everywhere (exact for ints/strings).

    The comparison every reader of golden cases makes (the build on its converted files,
    ``tdeploy verify`` and rollouts on a live server).
    """
    served, reference = np.asarray(served), np.asarray(reference)
    rows = int(reference.shape[0]) if reference.ndim else 1
    if served.shape != reference.shape:
        return {
            "max_abs_diff": float("inf"),
            "atol": atol,
            "rtol": rtol,
            "passed": False,
            "samples": rows,
            "problem": f"shape {list(served.shape)} != {list(reference.shape)}",
        }
    if _exact(reference):
        mismatches = int(np.sum(served != reference))
        return {
            "max_abs_diff": float(mismatches),
            "atol": 0.0,
            "rtol": 0.0,
            "passed": mismatches == 0,
            "samples": rows,
            "exact": True,
            **({"problem": f"{mismatches} values differ"} if mismatches else {}),
        }
    served64, reference64 = served.astype(np.float64), reference.astype(np.float64)
    both_nan = np.isnan(served64) & np.isnan(reference64)
    diff = np.where(both_nan, 0.0, np.abs(served64 - reference64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    ok = bool(np.all(diff <= atol + rtol * np.abs(np.nan_to_num(reference64))))
    return {
        "max_abs_diff": float(diff.max(initial=0.0)),
        "atol": atol,
        "rtol": rtol,
        "passed": ok,
        "samples": rows,
    }
