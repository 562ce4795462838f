"""Type aliases shared by the client modules."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy.typing as npt

#: gRPC message compression that tritonclient supports.
Compression: TypeAlias = Literal["gzip", "deflate"]
#: Per-call metadata headers (e.g. ``{"authorization": "Bearer ..."}``).
Headers: TypeAlias = Mapping[str, str]
#: One tensor as given by the caller: an ndarray, or nested lists / scalars.
TensorLike: TypeAlias = npt.ArrayLike
#: Input tensors by name.
InputMap: TypeAlias = Mapping[str, TensorLike]
#: Output tensors by name, as returned by ``infer``.
OutputMap: TypeAlias = dict[str, npt.NDArray[Any]]
#: One record (e.g. an ad impression) whose fields are the model's inputs.
Record: TypeAlias = Mapping[str, Any]
#: A file path.
StrPath: TypeAlias = str | os.PathLike[str]
#: gRPC channel arguments, ``("grpc.some_option", value)`` pairs.
ChannelArgs: TypeAlias = Sequence[tuple[str, Any]]
#: A numpy array of any dtype.
Array: TypeAlias = npt.NDArray[Any]
