"""Samples: the real inputs a model is checked with (``samples:`` in the spec), or synthetic ones.

An ``.npz`` holds one array per input, keyed by the input's name; an ``.npy`` holds the single
input of a one-input model. Arrays carry the batch axis first. Strings for BYTES inputs are
numpy string arrays (``U`` or ``S``); pickled object arrays are refused (loading them would run
code from the file). Samples are checked against the model's tensors (names, dtypes, shapes,
equal row counts), and at most ``MAX_ROWS`` rows are kept.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from triton_deploy.build.artifacts import Tensor, numpy_dtype
from triton_deploy.errors import ArtifactError

__all__ = [
    "EXPECTED_PREFIX",
    "MAX_ROWS",
    "SYNTHETIC_ROWS",
    "load_expected",
    "load_samples",
    "synthesize_samples",
]

#: ``expected/<output name>`` arrays in a samples ``.npz``: the outputs the training framework
#: computed for the samples; when present they are the parity reference.
EXPECTED_PREFIX = "expected/"

MAX_ROWS = 2000
SYNTHETIC_ROWS = 64


def _to_tensor_dtype(path: Path, tensor: Tensor, value: np.ndarray) -> np.ndarray:
    if tensor.dtype == "BYTES":
        if value.dtype.kind not in "SU":
            raise ArtifactError(
                f"{path}: samples for BYTES input '{tensor.name}' must be a string array, "
                f"got {value.dtype}"
            )
        flat = [v.encode() if isinstance(v, str) else bytes(v) for v in value.reshape(-1)]
        strings = np.empty(len(flat), dtype=object)
        strings[:] = flat
        return strings.reshape(value.shape)
    want = np.dtype(numpy_dtype(tensor.dtype))
    if value.dtype == want:
        return value
    if value.dtype.kind in "SUO" or not np.can_cast(value.dtype, want, casting="same_kind"):
        raise ArtifactError(
            f"{path}: samples for input '{tensor.name}' are {value.dtype}, which does not "
            f"convert to {tensor.dtype}"
        )
    return value.astype(want)


def _check_shape(path: Path, tensor: Tensor, value: np.ndarray, batching: bool) -> None:
    skip = 1 if batching else 0  # the batch axis takes any number of rows
    if value.ndim != len(tensor.shape) or any(
        want not in (-1, have)
        for want, have in zip(tensor.shape[skip:], value.shape[skip:], strict=True)
    ):
        axis = "; the first axis is the sample axis" if batching else ""
        raise ArtifactError(
            f"{path}: samples for input '{tensor.name}' have shape {list(value.shape)}, the "
            f"model takes {list(tensor.shape)} (-1: any{axis})"
        )


def load_samples(path: Path, inputs: list[Tensor], *, batching: bool) -> dict[str, np.ndarray]:
    """Samples for ``inputs`` from ``path``, checked and converted (see the module docstring)."""
    if not path.is_file():
        raise ArtifactError(f"{path}: samples file not found")
    if path.suffix.lower() == ".txt":
        return _text_samples(path, inputs, batching=batching)
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ArtifactError(
                f"{path}: holds pickled Python objects; save strings as numpy 'U' or 'S' arrays"
            ) from None
        raise ArtifactError(f"{path}: not a numpy .npy/.npz file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path}: not a readable numpy .npy/.npz file ({exc})") from None
    names = [t.name for t in inputs]
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise ArtifactError(
                f"{path}: a .npy holds one array, but the model has inputs {names}: use an .npz "
                "keyed by input name"
            )
        arrays = {names[0]: loaded}
    else:
        with loaded:
            try:
                arrays = {
                    key: loaded[key] for key in loaded.files if not key.startswith(EXPECTED_PREFIX)
                }
            except ValueError:
                raise ArtifactError(
                    f"{path}: holds pickled Python objects; save strings as numpy 'U' or 'S' arrays"
                ) from None
        missing = [n for n in names if n not in arrays]
        extra = sorted(set(arrays) - set(names))
        if missing or extra:
            raise ArtifactError(
                f"{path}: the samples' keys {sorted(arrays)} must be the model's inputs {names}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
            )
    samples: dict[str, np.ndarray] = {}
    for tensor in inputs:
        value = np.asarray(arrays[tensor.name])
        if not batching and value.ndim == len(tensor.shape) + 1:
            value = value[0]  # an unbatched model takes one request: the first
        if value.size == 0:
            raise ArtifactError(f"{path}: samples for input '{tensor.name}' are empty")
        _check_shape(path, tensor, value, batching)
        samples[tensor.name] = _to_tensor_dtype(path, tensor, value)
    if not batching:
        return samples
    rows = {name: value.shape[0] for name, value in samples.items()}
    if len(set(rows.values())) != 1:
        raise ArtifactError(f"{path}: the inputs have different numbers of rows: {rows}")
    return {name: value[:MAX_ROWS] for name, value in samples.items()}


def _text_samples(path: Path, inputs: list[Tensor], *, batching: bool) -> dict[str, np.ndarray]:
    """One input per line (blank lines skipped) for a model with one BYTES input."""
    if len(inputs) != 1 or inputs[0].dtype != "BYTES" or not batching:
        raise ArtifactError(
            f"{path}: a text file holds samples for a batching model with one BYTES input; "
            f"this model takes {[t.describe() for t in inputs]}: use an .npz keyed by input name"
        )
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: not UTF-8 text ({exc})") from None
    if not lines:
        raise ArtifactError(f"{path}: holds no text (one input per line)")
    strings = np.empty((min(len(lines), MAX_ROWS), 1), dtype=object)
    strings[:, 0] = [line.encode("utf-8") for line in lines[:MAX_ROWS]]
    return {inputs[0].name: strings}


def load_expected(path: Path, outputs: list[str], rows: int | None) -> dict[str, np.ndarray]:
    """The ``expected/<output>`` arrays of a samples ``.npz`` (empty when it has none), checked
    against the model's output names and the samples' row count (``rows``, None: unbatched)."""
    if path.suffix.lower() != ".npz":
        return {}
    with np.load(path, allow_pickle=False) as loaded:
        keys = [k for k in loaded.files if k.startswith(EXPECTED_PREFIX)]
        arrays = {k.removeprefix(EXPECTED_PREFIX): np.asarray(loaded[k]) for k in keys}
    if not arrays:
        return {}
    unknown = sorted(set(arrays) - set(outputs))
    if unknown:
        raise ArtifactError(
            f"{path}: expected outputs {unknown} are not outputs of the model ({outputs}); "
            "name them `expected/<output name>`"
        )
    if rows is not None:
        for name, value in arrays.items():
            if value.ndim == 0 or value.shape[0] < rows:
                raise ArtifactError(
                    f"{path}: 'expected/{name}' has shape {list(value.shape)}, but the samples "
                    f"have {rows} rows: save one expected row per sample row"
                )
        arrays = {name: value[:rows] for name, value in arrays.items()}
    return arrays


def synthesize_samples(
    inputs: list[Tensor], *, batching: bool, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs of the right dtypes and shapes (variable dims: 8), ``SYNTHETIC_ROWS`` rows."""
    rng = np.random.default_rng(seed)
    samples = {}
    for tensor in inputs:
        dims = tensor.shape[1:] if batching else tensor.shape
        shape = tuple(8 if d == -1 else d for d in dims)
        shape = (SYNTHETIC_ROWS, *shape) if batching else shape
        if tensor.dtype == "BYTES":
            words = np.array(
                [f"value_{i}".encode() for i in rng.integers(0, 20, int(np.prod(shape)))],
                dtype=object,
            )
            value = words.reshape(shape)
        elif tensor.dtype.startswith("FP"):
            value = rng.standard_normal(shape).astype(numpy_dtype(tensor.dtype))
        elif tensor.dtype == "BOOL":
            value = rng.random(shape) < 0.5
        elif tensor.dtype == "UINT8":
            value = rng.integers(0, 256, shape).astype(np.uint8)
        else:
            value = rng.integers(0, 10, shape).astype(numpy_dtype(tensor.dtype))
        samples[tensor.name] = value
    return samples
