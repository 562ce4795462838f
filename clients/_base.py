"""What ``InferenceClient`` and ``AsyncInferenceClient`` share: options, the metadata cache,
request building, response decoding, error translation and chunking. No I/O happens here."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput

from ._errors import (
    ClientError,
    InvalidInput,
    ModelNotFound,
    UsageError,
    from_exception,
)
from ._retry import Deadline, RetryPolicy
from ._schema import ModelSchema, TensorSpec
from ._types import (
    Array,
    ChannelArgs,
    Compression,
    Headers,
    InputMap,
    OutputMap,
    StrPath,
    TensorLike,
)
from ._validation import prepare_inputs, raw_inputs

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTION_AGE_S",
    "DEFAULT_METADATA_TTL_S",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_URL",
    "BaseClient",
]

DEFAULT_URL = "localhost:8001"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTION_AGE_S = 60.0
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_METADATA_TTL_S = 60.0

# tritonclient's own defaults (replaced as a whole when channel_args are given), plus ours.
_INT32_MAX = 2**31 - 1
_DEFAULT_CHANNEL_ARGS: dict[str, Any] = {
    "grpc.max_send_message_length": _INT32_MAX,
    "grpc.max_receive_message_length": _INT32_MAX,
    # A recycled channel must open its own connection, not borrow the old one from gRPC's
    # process-wide subchannel pool (that would defeat max_connection_age_s).
    "grpc.use_local_subchannel_pool": 1,
    # Reconnect quickly after a server restart instead of gRPC's up-to-120 s backoff. (Not
    # grpc.min_reconnect_backoff_ms: gRPC also uses it as the connect timeout, 20 s default.)
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2000,
}
_COMPRESSIONS = ("gzip", "deflate")

Key = tuple[str, str]  # (model, version)


class SchemaChanged(Exception):
    """Internal: a chunk of ``infer_many`` met a changed model; plan the chunks again."""

    def __init__(self, schema: ModelSchema) -> None:
        super().__init__(schema.name)
        self.schema = schema


@dataclass(slots=True)
class Call:
    """One call's resolved options."""

    model: str
    version: str
    deadline: Deadline
    headers: dict[str, str] | None
    compression: str | None
    outputs: list[Any] | None
    request_id: str
    priority: int
    queue_timeout_us: int | None


class BaseClient:
    """Options and shared logic; see ``InferenceClient`` for the parameters."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        max_connection_age_s: float | None = DEFAULT_MAX_CONNECTION_AGE_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        metadata_ttl_s: float | None = DEFAULT_METADATA_TTL_S,
        headers: Headers | None = None,
        compression: Compression | None = None,
        ssl: bool = False,
        root_certificates: StrPath | None = None,
        private_key: StrPath | None = None,
        certificate_chain: StrPath | None = None,
        creds: Any = None,
        channel_args: ChannelArgs = (),
        verbose: bool = False,
    ) -> None:
        if not url or "://" in url:
            raise UsageError(
                f"url must be host:port of Triton's gRPC endpoint (e.g. localhost:8001), "
                f"got {url!r}"
            )
        if not timeout > 0:
            raise UsageError(f"timeout must be > 0 seconds, got {timeout!r}")
        if max_concurrency < 1:
            raise UsageError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.url = url
        self.timeout = float(timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_connection_age_s = max_connection_age_s
        self.max_concurrency = max_concurrency
        if metadata_ttl_s is not None and metadata_ttl_s < 0:
            raise UsageError(f"metadata_ttl_s must be >= 0 or None, got {metadata_ttl_s!r}")
        self.metadata_ttl_s = metadata_ttl_s
        self.headers: dict[str, str] = _lower_keys(headers)
        self.compression = _check_compression(compression)
        files = {
            "root_certificates": root_certificates,
            "private_key": private_key,
            "certificate_chain": certificate_chain,
        }
        for option, path in files.items():
            if path is not None and not os.path.isfile(path):
                raise UsageError(f"{option}: no such file {os.fspath(path)!r}")
        if any(path is not None for path in files.values()):
            ssl = True
        args = dict(_DEFAULT_CHANNEL_ARGS)
        args.update(dict(channel_args))
        # Passed on to tritonclient each time a channel is (re)created; TLS files are read
        # again then, so rotated certificates are picked up with the next channel.
        self._triton_kwargs: dict[str, Any] = {
            "url": url,
            "verbose": verbose,
            "ssl": ssl,
            "root_certificates": _path(root_certificates),
            "private_key": _path(private_key),
            "certificate_chain": _path(certificate_chain),
            "creds": creds,
            "channel_args": list(args.items()),
        }
        self._schemas: dict[Key, tuple[ModelSchema, float]] = {}  # schema, fetched at
        self._setup_channels()

    def _setup_channels(self) -> None:
        """Subclasses create their channel pool here."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- per call options ----------------------------------------------------------------------
    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else timeout)

    def _headers(self, headers: Headers | None) -> dict[str, str] | None:
        if not headers:
            return self.headers or None
        return {**self.headers, **_lower_keys(headers)}

    def _options(
        self,
        model: str,
        *,
        version: str = "",
        timeout: float | None = None,
        headers: Headers | None = None,
        compression: Compression | None = None,
        outputs: Sequence[str] | None = None,
        request_id: str = "",
        priority: int = 0,
        queue_timeout: float | None = None,
    ) -> Call:
        if not isinstance(version, str):
            raise UsageError(f"version must be a string such as '1' or '', got {version!r}")
        return Call(
            model=model,
            version=version,
            deadline=self._deadline(timeout),
            headers=self._headers(headers),
            compression=(
                self.compression if compression is None else _check_compression(compression)
            ),
            outputs=[InferRequestedOutput(name) for name in outputs] if outputs else None,
            request_id=request_id,
            priority=priority,
            queue_timeout_us=None if queue_timeout is None else max(1, round(queue_timeout * 1e6)),
        )

    # -- requests ------------------------------------------------------------------------------
    @staticmethod
    def _merge_inputs(inputs: InputMap | None, named: Mapping[str, TensorLike]) -> dict[str, Any]:
        if inputs is None:
            return dict(named)
        if not isinstance(inputs, Mapping):
            raise UsageError(
                "inputs must be a mapping of input name to array, e.g. {'IMAGES': images}, "
                f"got {type(inputs).__name__}"
            )
        clash = set(inputs) & set(named)
        if clash:
            raise UsageError(f"input {sorted(clash)} given twice (mapping and keyword)")
        return {**inputs, **named}

    @staticmethod
    def _validated(
        schema: ModelSchema,
        given: Mapping[str, TensorLike],
        outputs: Sequence[str] | None,
        *,
        limit_batch: bool = True,
    ) -> tuple[list[tuple[TensorSpec, Array]], int]:
        if outputs:
            unknown = [name for name in outputs if name not in schema.output_names]
            if unknown:
                raise InvalidInput(
                    f"model '{schema.name}' has no output {', '.join(map(repr, unknown))}; "
                    f"its outputs are: {', '.join(schema.output_names)}",
                    tensor=unknown[0],
                    model=schema.name,
                )
        return prepare_inputs(schema, given, limit_batch=limit_batch)

    @staticmethod
    def _infer_inputs(items: Iterable[tuple[str, str, Array]]) -> list[Any]:
        built = []
        for name, datatype, array in items:
            infer_input = InferInput(name, list(array.shape), datatype)
            infer_input.set_data_from_numpy(array)
            built.append(infer_input)
        return built

    @classmethod
    def _checked_request(cls, prepared: list[tuple[TensorSpec, Array]]) -> list[Any]:
        return cls._infer_inputs((spec.name, spec.datatype, array) for spec, array in prepared)

    @classmethod
    def _raw_request(cls, given: Mapping[str, TensorLike]) -> list[Any]:
        return cls._infer_inputs(raw_inputs(given))

    # -- responses -----------------------------------------------------------------------------
    def _decode(self, result: Any, schema: ModelSchema | None) -> OutputMap:
        response = result.get_response()
        if schema is not None:
            version = response.model_version
            # The server answered with a version the cached metadata does not list: a new
            # version was loaded. Forget the metadata; the next call fetches it again.
            if version and version not in schema.versions:
                self._forget(schema)
        names = [output.name for output in response.outputs]
        if schema is not None and len(names) > 1:  # the model's declared order, not the wire's
            rank = {name: i for i, name in enumerate(schema.output_names)}
            names.sort(key=lambda name: rank.get(name, len(rank)))
        return {name: result.as_numpy(name) for name in names}

    def _map(self, exc: BaseException, call: Call) -> ClientError:
        return from_exception(exc, model=call.model, timeout=call.deadline.timeout)

    # -- metadata cache ------------------------------------------------------------------------
    def _cached(self, model: str, version: str) -> ModelSchema | None:
        """The cached schema, unless it is older than ``metadata_ttl_s``."""
        entry = self._schemas.get((model, version))
        if entry is None:
            return None
        schema, fetched = entry
        if self.metadata_ttl_s is not None and time.monotonic() - fetched >= self.metadata_ttl_s:
            return None
        return schema

    def _remember(self, model: str, version: str, schema: ModelSchema) -> None:
        self._schemas[(model, version)] = (schema, time.monotonic())

    def _forget(self, schema: ModelSchema) -> None:
        for key, (cached, _) in list(self._schemas.items()):
            if cached is schema:
                self._schemas.pop(key, None)

    @staticmethod
    def _maybe_stale(error: ClientError) -> bool:
        """A server-side rejection that a changed model config or version could explain."""
        return error.status is not None and isinstance(error, InvalidInput | ModelNotFound)

    # -- infer_many ----------------------------------------------------------------------------
    @staticmethod
    def _chunk_slices(batch: int, schema: ModelSchema, chunk_size: int | None) -> list[slice]:
        if not schema.batched:
            return [slice(None)]
        size = schema.max_batch_size if chunk_size is None else chunk_size
        if not 1 <= size <= schema.max_batch_size:
            raise UsageError(
                f"chunk_size must be between 1 and model '{schema.name}''s max_batch_size "
                f"{schema.max_batch_size}, got {size}"
            )
        return chunk_slices(batch, size)

    def _plan_many(
        self,
        schema: ModelSchema,
        given: Mapping[str, TensorLike],
        outputs: Sequence[str] | None,
        validate: bool,
        chunk_size: int | None,
    ) -> tuple[dict[str, Array], dict[str, str], list[slice]]:
        """``infer_many``'s arrays (checked once, whole), their datatypes, and the chunks."""
        if validate:
            prepared, batch = self._validated(schema, given, outputs, limit_batch=False)
            arrays = {spec.name: array for spec, array in prepared}
            datatypes = {spec.name: spec.datatype for spec, _ in prepared}
        else:
            raw = raw_inputs(given)
            arrays = {name: array for name, _, array in raw}
            datatypes = {name: datatype for name, datatype, _ in raw}
            batch = min((len(a) for a in arrays.values() if a.ndim), default=0)
        return arrays, datatypes, self._chunk_slices(batch, schema, chunk_size)

    def _chunk_request(
        self, arrays: Mapping[str, Array], datatypes: Mapping[str, str], part: slice
    ) -> tuple[dict[str, Array], list[Any]]:
        chunk = split_arrays(arrays, part)
        return chunk, self._infer_inputs((n, datatypes[n], a) for n, a in chunk.items())

    def _concurrency(self, max_concurrency: int | None, chunks: int) -> int:
        limit = self.max_concurrency if max_concurrency is None else max_concurrency
        if limit < 1:
            raise UsageError(f"max_concurrency must be >= 1, got {limit}")
        return max(1, min(limit, chunks))

    @staticmethod
    def _concat(results: Sequence[OutputMap]) -> OutputMap:
        if len(results) == 1:
            return results[0]
        return {name: np.concatenate([r[name] for r in results], axis=0) for name in results[0]}


def chunk_slices(batch: int, size: int) -> list[slice]:
    """``[0:size], [size:2*size], ...`` covering ``batch`` rows in order."""
    if size < 1:
        raise UsageError(f"chunk size must be >= 1, got {size}")
    return [slice(start, min(start + size, batch)) for start in range(0, batch, size)]


def split_arrays(arrays: Mapping[str, Array], part: slice) -> dict[str, Array]:
    return {name: array[part] for name, array in arrays.items()}


def _lower_keys(headers: Headers | None) -> dict[str, str]:
    # gRPC metadata keys must be lowercase; HTTP headers are case-insensitive anyway.
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _check_compression(compression: str | None) -> str | None:
    if compression is not None and compression not in _COMPRESSIONS:
        raise UsageError(f"compression must be one of {_COMPRESSIONS} or None, got {compression!r}")
    return compression


def _path(path: StrPath | None) -> str | None:
    return None if path is None else os.fspath(path)
