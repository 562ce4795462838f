"""Run every request of one Triton ``execute()`` call as one framework call.

Pure numpy, no triton_deploy import: this file is copied next to each Python model and each
Python-based backend, in the local runtime and in the production model repository alike.
Dynamic batching pays off only when the requests that Triton gathered into one ``execute()``
reach the framework as one batch; these helpers concatenate them and split the results.
"""

from __future__ import annotations

import itertools

import numpy as np


class RequestError(Exception):
    """A request that cannot be served; the message names the tensor and what is wrong."""


def gather(
    arrays_per_request: list[dict[str, np.ndarray]], names: list[str]
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Concatenate each named input along the batch axis; return the batch and the row counts."""
    sizes = [int(arrays[names[0]].shape[0]) for arrays in arrays_per_request]
    if len(arrays_per_request) == 1:
        return dict(arrays_per_request[0]), sizes
    batch = {
        name: np.concatenate([arrays[name] for arrays in arrays_per_request]) for name in names
    }
    return batch, sizes


def split(outputs: dict[str, np.ndarray], sizes: list[int]) -> list[dict[str, np.ndarray]]:
    """Split batched outputs back into one dict per request, in request order (views)."""
    if len(sizes) == 1:
        return [outputs]
    bounds = [0, *itertools.accumulate(sizes)]
    return [
        {name: value[bounds[i] : bounds[i + 1]] for name, value in outputs.items()}
        for i in range(len(sizes))
    ]


def input_shapes(model_config: dict) -> tuple[int, dict[str, list[int]]]:
    """``(max_batch_size, {input name: dims the model sees})`` for ``check_inputs``: the
    config's dims, or its ``reshape`` (Triton reshapes before the backend sees the tensor)."""
    dims = {
        tensor["name"]: [
            int(d)
            for d in (
                tensor["reshape"].get("shape", [])
                if "reshape" in tensor
                else tensor.get("dims", [])
            )
        ]
        for tensor in model_config.get("input", [])
    }
    return int(model_config.get("max_batch_size", 0)), dims


def check_inputs(
    tensors: dict[str, np.ndarray], expected: tuple[int, dict[str, list[int]]]
) -> str | None:
    """Why a request's tensors do not fit the config (None if they do).

    Triton 2.51 keeps the batch size in 32 bits: a batch dimension of 2^32 or more is truncated
    (``[2^62, 8, 8]`` becomes batch 0 and reaches the backend as ``[8, 8]``, with matching
    bytes) and the request would succeed with wrong output shapes. So every input must have the
    batch dimension, the configured dims, and at most ``max_batch_size`` rows.
    """
    max_batch_size, dims = expected
    for name, value in tensors.items():
        want = dims.get(name)
        if want is None:
            continue
        shape = list(value.shape)
        full = (["batch"] if max_batch_size > 0 else []) + want
        if len(shape) != len(full):
            return f"input tensor '{name}' has shape {shape}, expected {full}" + (
                " (a batch dimension of 2^32 or more is truncated by the server)"
                if max_batch_size > 0 and len(shape) == len(want)
                else ""
            )
        inner = shape[1:] if max_batch_size > 0 else shape
        if any(w != -1 and w != s for w, s in zip(want, inner, strict=True)):
            return f"input tensor '{name}' has shape {shape}, expected {full}"
        if max_batch_size > 0 and shape[0] > max_batch_size:
            return (
                f"input tensor '{name}' has a batch of {shape[0]} rows, "
                f"over max_batch_size {max_batch_size}"
            )
        if value.dtype != np.object_ and value.nbytes != int(np.prod(shape)) * value.itemsize:
            return f"input tensor '{name}': {value.nbytes} bytes do not fill shape {shape}"
    return None


def string_parameters(model_config: dict) -> dict[str, str]:
    """A model config's ``parameters`` as plain strings (the native backends read strings)."""
    return {
        key: value.get("string_value", "")
        for key, value in model_config.get("parameters", {}).items()
    }


def _ok(pb_utils, result, output_specs):
    tensors = [
        pb_utils.Tensor(name, np.ascontiguousarray(result[name], dtype=dtype))
        for name, dtype in output_specs.items()
    ]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _request_arrays(request, input_names):
    """The named inputs of one request as numpy arrays, or an error message.

    One pass over ``request.inputs()``: ``pb_utils.get_input_tensor_by_name`` scans every
    input of the request for each name it is asked for.
    """
    tensors = {tensor.name(): tensor for tensor in request.inputs()}
    arrays = {}
    for name in input_names:
        tensor = tensors.get(name)
        if tensor is None:
            return None, f"input tensor '{name}' is missing"
        arrays[name] = tensor.as_numpy()
    if arrays and arrays[input_names[0]].shape[0] == 0:
        return None, f"input tensor '{input_names[0]}' has an empty batch (0 rows)"
    return arrays, None


def _responses(pb_utils, outputs, sizes, output_specs):
    """One response per request: each output converted once for the whole batch, then sliced.

    Slices of a C-contiguous batch along axis 0 are contiguous views, so no request pays for a
    conversion or a copy of its own before the backend copies its tensors out.
    """
    whole = {
        name: np.ascontiguousarray(outputs[name], dtype=dtype)
        for name, dtype in output_specs.items()
    }
    if len(sizes) == 1:
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(name, value) for name, value in whole.items()]
            )
        ]
    responses = []
    start = 0
    for size in sizes:
        end = start + size
        responses.append(
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(name, value[start:end]) for name, value in whole.items()
                ]
            )
        )
        start = end
    return responses


def _invalid(pb_utils, message):
    error = pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    return pb_utils.InferenceResponse(error=error)


def execute_batched(pb_utils, requests, input_names, output_specs, run, expected=None):
    """Serve ``requests`` with one call of ``run(batch: dict) -> dict`` and build the responses.

    ``output_specs`` maps output name to numpy dtype. ``expected`` (``input_shapes(config)``)
    makes every request's tensors be checked against the config first. A ``RequestError``
    from validating one request fails that request alone; an error from ``run`` fails every
    request of the batch.
    """
    responses = [None] * len(requests)
    good, arrays = [], []
    for index, request in enumerate(requests):
        tensors, problem = _request_arrays(request, input_names)
        if problem is not None:
            responses[index] = _invalid(pb_utils, problem)
        else:
            problem = check_inputs(tensors, expected) if expected is not None else None
            if problem is not None:
                responses[index] = _invalid(pb_utils, problem)
            else:
                good.append(index)
                arrays.append(tensors)
    if not good:
        return responses
    try:
        batch, sizes = gather(arrays, input_names)
        outputs = run(batch)
        for index, response in zip(
            good, _responses(pb_utils, outputs, sizes, output_specs), strict=True
        ):
            responses[index] = response
    except RequestError as exc:
        if len(good) == 1:
            responses[good[0]] = _invalid(pb_utils, str(exc))
        else:
            # One bad request in a dynamic batch: serve each request alone so that only the
            # bad one fails and its neighbours still get their answers.
            for index, tensors in zip(good, arrays, strict=True):
                try:
                    responses[index] = _ok(pb_utils, run(tensors), output_specs)
                except RequestError as single:
                    responses[index] = _invalid(pb_utils, str(single))
    except Exception as exc:
        for index in good:
            error = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            responses[index] = pb_utils.InferenceResponse(error=error)
    return responses
