"""Check and convert inputs against a model's schema on the client, before anything is sent.

Rules (each failure is an ``InvalidInput`` naming the tensor, expected vs given):

- every name must be an input of the model; every non-optional input must be given;
- an ``np.ndarray`` must already have the model's dtype (no silent casts); nested lists and
  scalars are converted to it when that is lossless;
- BYTES inputs take ``str`` (UTF-8 encoded by tritonclient) or ``bytes`` elements;
- the rank and every fixed dimension must match; for a batching model the first dimension is
  the batch: at least 1, at most ``max_batch_size`` (``infer_many`` lifts this limit by
  splitting), and the same for every input.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

from ._errors import InvalidInput
from ._schema import ModelSchema, TensorSpec, format_shape
from ._types import Array, Record, TensorLike

__all__ = ["arrays_from_records", "numpy_dtype", "prepare_inputs", "raw_inputs"]


@functools.cache
def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype tritonclient expects for a Triton datatype (its own mapping: BF16 is
    ``ml_dtypes.bfloat16``, BYTES an object array)."""
    found = triton_to_np_dtype(datatype)
    if found is None:
        raise InvalidInput(f"unsupported Triton datatype {datatype!r}")
    return np.dtype(found)


def _float_like(dtype: np.dtype[Any]) -> bool:
    """numpy floats and ml_dtypes' (bfloat16 has kind 'V')."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


def prepare_inputs(
    schema: ModelSchema,
    given: Mapping[str, TensorLike],
    *,
    limit_batch: bool = True,
    allow_empty: bool = False,
) -> tuple[list[tuple[TensorSpec, Array]], int]:
    """Validate ``given`` against ``schema``; return ``[(spec, array)]`` and the batch size.

    The batch size is 0 for a model without batching. ``limit_batch=False`` accepts batches
    over ``max_batch_size`` (``infer_many`` splits them afterwards); ``allow_empty=True`` a
    batch of 0 rows (``infer_many`` then sends nothing).
    """
    if not isinstance(given, Mapping):
        raise InvalidInput(f"inputs must be a mapping of input name to array, got {given!r}")
    model = schema.name
    names = given.keys()
    unknown = [name for name in given if schema.input(name) is None] if names - schema.names else []
    if unknown:
        raise InvalidInput(
            f"model '{model}' has no input {_names(unknown)}; its inputs are: "
            f"{schema.describe_inputs()}",
            tensor=unknown[0],
            model=model,
        )
    missing = (
        [s.name for s in schema.inputs if not s.optional and s.name not in given]
        if schema.required - names
        else []
    )
    if missing:
        raise InvalidInput(
            f"missing input {_names(missing)} for model '{model}'; its inputs are: "
            f"{schema.describe_inputs()}",
            tensor=missing[0],
            model=model,
        )
    prepared: list[tuple[TensorSpec, Array]] = []
    batch = 0
    batch_from = ""
    for check in _checks(schema):
        spec = check.spec
        value = given.get(spec.name, _ABSENT)
        if value is _ABSENT:
            continue  # an optional input
        # Fast path first: this runs on every call (the event loop's time, for asyncio).
        if type(value) is np.ndarray and (
            value.dtype == check.dtype
            if check.dtype is not None
            else value.dtype.kind == "O" and set(map(type, value.ravel().tolist())) <= _TEXT_TYPES
        ):
            array: Array = value
        else:
            array = _coerce(spec, value, model)
        shape = array.shape
        ok = len(shape) == check.rank
        if ok:
            for index, dim in check.fixed:
                if shape[index] != dim:
                    ok = False
                    break
        if not ok:
            _check_shape(schema, spec, array)  # raises, with the full story
        if schema.batched:
            n = int(array.shape[0])
            if n < 1 and not allow_empty:
                raise InvalidInput(
                    f"input '{spec.name}' of model '{model}' is an empty batch "
                    f"(shape {list(array.shape)}); send at least one sample",
                    tensor=spec.name,
                    model=model,
                )
            if limit_batch and n > schema.max_batch_size:
                raise InvalidInput(
                    f"input '{spec.name}' of model '{model}': batch of {n} exceeds "
                    f"max_batch_size {schema.max_batch_size}; use infer_many() to send it "
                    "in chunks",
                    tensor=spec.name,
                    model=model,
                )
            if batch_from and n != batch:
                raise InvalidInput(
                    f"inputs of model '{model}' disagree on the batch size: "
                    f"'{batch_from}' has {batch}, '{spec.name}' has {n}",
                    tensor=spec.name,
                    model=model,
                )
            batch, batch_from = n, spec.name
        prepared.append((spec, array))
    return prepared, batch


def raw_inputs(given: Mapping[str, TensorLike]) -> list[tuple[str, str, Array]]:
    """No validation (``validate=False``): ``[(name, datatype, array)]`` from numpy dtypes."""
    out: list[tuple[str, str, Array]] = []
    for name, value in given.items():
        array = np.asarray(value)
        if array.dtype.kind == "U":
            array = array.astype(np.object_)
        datatype = np_to_triton_dtype(array.dtype)
        if datatype is None:
            raise InvalidInput(
                f"input '{name}': numpy dtype {array.dtype} has no Triton datatype",
                tensor=name,
            )
        out.append((name, str(datatype), array))
    return out


def _coerce(spec: TensorSpec, value: TensorLike, model: str) -> Array:
    expected = numpy_dtype(spec.datatype)
    if spec.datatype == "BYTES":
        return _coerce_bytes(spec, value, model)
    if isinstance(value, np.ndarray):
        if value.dtype != expected:
            raise InvalidInput(
                f"input '{spec.name}' of model '{model}': expected dtype {spec.datatype} "
                f"({expected}), got {value.dtype}; convert it explicitly, e.g. "
                f"array.astype(np.{expected.name}), if the values fit",
                tensor=spec.name,
                model=model,
            )
        return value
    # Lists and scalars: convert, but only when no value changes on the way.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy 1.x warns on out-of-range ints
            loose = np.asarray(value)
            array = np.asarray(value, dtype=expected)
        if loose.dtype.kind not in "biuf":
            lossless = False
        elif _float_like(expected):  # floats round; only overflow to inf is a loss
            lossless = bool(np.all(np.isfinite(array) | ~np.isfinite(loose)))
        else:
            lossless = bool(np.array_equal(array, loose))
    except (TypeError, ValueError, OverflowError):
        lossless = False
    if not lossless:
        raise InvalidInput(
            f"input '{spec.name}' of model '{model}': expected {spec.datatype} values, got "
            f"{_preview(value)} which do not convert to {expected} exactly",
            tensor=spec.name,
            model=model,
        )
    return array


_TEXT_TYPES = frozenset({str, bytes})
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class _Check:
    """What ``prepare_inputs`` checks for one input, worked out once per schema."""

    spec: TensorSpec
    dtype: np.dtype[Any] | None  # None: BYTES (element types are checked instead)
    rank: int
    fixed: tuple[tuple[int, int], ...]  # (index, size) of every fixed dimension


def _checks(schema: ModelSchema) -> tuple[_Check, ...]:
    checks: tuple[_Check, ...] | None = schema.cache.get("checks")
    if checks is None:
        checks = tuple(
            _Check(
                spec=spec,
                dtype=None if spec.datatype == "BYTES" else numpy_dtype(spec.datatype),
                rank=len(spec.shape),
                fixed=tuple((i, d) for i, d in enumerate(spec.shape) if d != -1),
            )
            for spec in schema.inputs
        )
        schema.cache["checks"] = checks
    return checks


def _coerce_bytes(spec: TensorSpec, value: TensorLike, model: str) -> Array:
    array = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=np.object_)
    if array.dtype.kind in "US":
        return array.astype(np.object_)
    if array.dtype.kind == "O":
        # Fast path (per request, so it matters): the set of element types, built in C.
        if set(map(type, array.ravel().tolist())) <= _TEXT_TYPES:
            return array
        for item in array.flat:
            if not isinstance(item, str | bytes):
                raise InvalidInput(
                    f"input '{spec.name}' of model '{model}': expected BYTES (str or bytes "
                    f"elements), got an element of type {type(item).__name__}: {item!r}",
                    tensor=spec.name,
                    model=model,
                )
        return array
    raise InvalidInput(
        f"input '{spec.name}' of model '{model}': expected BYTES (str or bytes elements), "
        f"got dtype {array.dtype}",
        tensor=spec.name,
        model=model,
    )


def _check_shape(schema: ModelSchema, spec: TensorSpec, array: Array) -> None:
    expected = spec.shape
    given = array.shape
    ok = len(given) == len(expected) and all(
        e == -1 or e == g for e, g in zip(expected, given, strict=True)
    )
    if ok:
        return
    message = (
        f"input '{spec.name}' of model '{schema.name}': expected shape "
        f"{format_shape(expected, schema.max_batch_size)}"
    )
    if schema.batched:
        message += f" (N ≤ {schema.max_batch_size})"
    message += f", got {list(given)}"
    sample = schema.sample_shape(spec)
    if schema.batched and len(given) == len(sample) and _fits(sample, given):
        message += "; that is one sample: add the batch dimension, e.g. array[None]"
    raise InvalidInput(message, tensor=spec.name, model=schema.name)


def _fits(expected: Sequence[int], given: Sequence[int]) -> bool:
    return all(e == -1 or e == g for e, g in zip(expected, given, strict=True))


def arrays_from_records(schema: ModelSchema, records: Sequence[Record]) -> dict[str, Array]:
    """Build one batched array per input from records whose fields are the model's inputs.

    For the CTR ensemble: ``[{"hour_of_day": 13, "device_type": "mobile", ...}, ...]`` becomes
    ``{"hour_of_day": float32 [N, 1], "device_type": object [N, 1], ...}``. A field holding a
    scalar fills a ``[1]``-shaped sample; a list fills a longer one. Extra fields are ignored
    (records may carry ids or labels); a missing field is an ``InvalidInput`` naming it.
    """
    model = schema.name
    if not schema.batched:
        raise InvalidInput(
            f"model '{model}' does not batch (max_batch_size 0); records need a batching model",
            model=model,
        )
    arrays: dict[str, Array] = {}
    for spec in schema.inputs:
        sample = schema.sample_shape(spec)
        is_bytes = spec.datatype == "BYTES"
        column: list[Any] = []
        for index, record in enumerate(records):
            if spec.name not in record:
                if spec.optional:
                    column = []
                    break
                raise InvalidInput(
                    f"record {index} has no field '{spec.name}' (model '{model}' needs "
                    f"{_names([s.name for s in schema.inputs if not s.optional])})",
                    tensor=spec.name,
                    model=model,
                )
            item = record[spec.name]
            if not _field_ok(item, is_bytes):
                kind = "a string" if is_bytes else "a number"
                raise InvalidInput(
                    f"field '{spec.name}' of record {index} must be {kind} "
                    f"({spec.datatype}), got {item!r}",
                    tensor=spec.name,
                    model=model,
                )
            column.append(item)
        if not column:
            continue
        dtype = np.object_ if is_bytes else numpy_dtype(spec.datatype)
        try:
            array = np.asarray(column, dtype=dtype).reshape((len(column), *_fixed(sample)))
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"field '{spec.name}' does not fit the model's sample shape "
                f"{format_shape(sample)}: {exc}",
                tensor=spec.name,
                model=model,
            ) from None
        arrays[spec.name] = array
    return arrays


def _field_ok(item: Any, is_bytes: bool) -> bool:
    if isinstance(item, list | tuple | np.ndarray):
        return all(_field_ok(x, is_bytes) for x in np.asarray(item, dtype=np.object_).flat)
    if is_bytes:
        return isinstance(item, str | bytes)
    return isinstance(item, int | float | np.number) and not isinstance(item, str)


def _fixed(sample: tuple[int, ...]) -> tuple[int, ...]:
    # One variable dimension per sample is allowed (numpy infers it).
    return tuple(d if d >= 0 else -1 for d in sample)


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
