"""What ``InferenceClient`` and ``AsyncInferenceClient`` share: options and their checks, the
metadata cache, request building, response decoding, error translation, the retry decision,
logging and chunking. No I/O happens here."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import ssl as stdlib_ssl
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput

from triton_deploy.defaults import DEFAULT_TIMEOUT_S, DEFAULT_URL

from ._errors import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    TransientError,
    Unavailable,
    UsageError,
    from_exception,
)
from ._pool import Channel
from ._retry import Deadline, RetryBudget, RetryPolicy
from ._schema import ModelSchema, TensorSpec
from ._shadow import ShadowConfig, ShadowRecorder, ShadowReport
from ._tracing import trace_context
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
from ._validation import numpy_dtype, prepare_inputs, raw_inputs

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTION_AGE_S",
    "DEFAULT_METADATA_TTL_S",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_URL",
    "BaseClient",
]

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
# gRPC metadata keys: lowercase letters, digits, "-", "_", "."; "grpc-" is reserved.
_HEADER_KEY = re.compile(r"^[0-9a-z_.-]+$")
_UINT64_MAX = 2**64 - 1

#: The library's logger: calls at DEBUG, retries and failures at WARNING. It has a NullHandler
#: (set in ``triton_deploy.clients``), so nothing is printed unless the application configures
#: logging.
logger = logging.getLogger("triton_deploy.clients")

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
    what: str = "infer"  # the RPC, for the log
    attempts: int = 0
    #: A client with ``weights``: the endpoint's own client this call goes to (or None).
    route: Any = None
    #: The last failed attempt that is being retried: its error and the exception behind it.
    retrying: tuple[ClientError, BaseException] | None = None


class BaseClient:
    """Options and shared logic; see ``InferenceClient`` for the parameters."""

    #: Failed calls are logged at WARNING (not by a shadow's own client: see ShadowRecorder).
    _log_failures = True

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
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
        weights: Mapping[str, float] | None = None,
        shadow: ShadowConfig | None = None,
    ) -> None:
        split = _check_weights(weights, url)
        if split:
            url = split[0][0]
        url = DEFAULT_URL if url is None else url
        _check_url(url, "url")
        if shadow is not None and not isinstance(shadow, ShadowConfig):
            raise UsageError(f"shadow must be a ShadowConfig or None, got {shadow!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise UsageError(f"retry must be a RetryPolicy or None, got {retry!r}")
        if retry_budget is not None and not isinstance(retry_budget, RetryBudget):
            raise UsageError(f"retry_budget must be a RetryBudget or None, got {retry_budget!r}")
        self.url = url
        self.timeout = _seconds(timeout, "timeout")
        self.retry = retry if retry is not None else RetryPolicy()
        #: Shared by every call of this client (see ``RetryBudget``).
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        if max_connection_age_s is not None:
            max_connection_age_s = _seconds(max_connection_age_s, "max_connection_age_s")
        self.max_connection_age_s = max_connection_age_s
        self.max_concurrency = _count(max_concurrency, "max_concurrency")
        if metadata_ttl_s is not None and (
            _number(metadata_ttl_s, "metadata_ttl_s") < 0 or math.isnan(metadata_ttl_s)
        ):
            raise UsageError(f"metadata_ttl_s must be >= 0 or None, got {metadata_ttl_s!r}")
        self.metadata_ttl_s = metadata_ttl_s
        self.headers: dict[str, str] = check_headers(headers, "headers")
        self.compression = _check_compression(compression)
        tls_files = {
            "root_certificates": root_certificates,
            "private_key": private_key,
            "certificate_chain": certificate_chain,
        }
        check_tls_files(root_certificates, private_key, certificate_chain)
        if any(path is not None for path in tls_files.values()):
            ssl = True
        self.tls = bool(ssl or creds is not None)
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
        self._forgotten: dict[Key, ModelSchema] = {}  # dropped for a new version (_remember)
        # model -> versions that answered with the cached schema's tensors, or since it was
        # dropped for an unexpected version (_decode, _remember)
        self._seen_versions: dict[str, set[str]] = {}
        self._setup_channels()
        # weights: one plain client per endpoint; each call goes to one of them (``_pick``).
        # shadow: a plain client for the shadow endpoint, no retries. Both share the options.
        options: dict[str, Any] = {
            "timeout": timeout,
            "retry": retry,
            "retry_budget": retry_budget,
            "max_connection_age_s": max_connection_age_s,
            "max_concurrency": max_concurrency,
            "metadata_ttl_s": metadata_ttl_s,
            "headers": headers,
            "compression": compression,
            "ssl": ssl,
            "root_certificates": root_certificates,
            "private_key": private_key,
            "certificate_chain": certificate_chain,
            "creds": creds,
            "channel_args": channel_args,
            "verbose": verbose,
        }
        self._routes: list[Any] = [self._plain(u, options) for u, _ in split]
        self._rotation = _SmoothWeights([w for _, w in split])
        if split:
            self.url = " + ".join(f"{u} ({w:g})" for u, w in split)
        self._shadow: ShadowRecorder | None = None
        self._shadow_client: Any = None
        if shadow is not None:
            self._shadow = ShadowRecorder(shadow)
            self._shadow_client = self._plain(
                shadow.url, options | {"retry": RetryPolicy.none(), "timeout": shadow.timeout}
            )
            # its failures are the shadow's results, logged by the recorder (rate-limited)
            self._shadow_client._log_failures = False

    def _plain(self, url: str, options: dict[str, Any]) -> Any:
        """A client of this twin's kind for one endpoint, with ``options`` (no weights, no
        shadow)."""
        raise NotImplementedError

    def _pick(self) -> Any:
        """The endpoint client for the next call (weighted), or None without ``weights``."""
        return self._routes[self._rotation.next()] if self._routes else None

    @property
    def shadow_stats(self) -> ShadowReport | None:
        """The shadow comparisons so far (``shadow=ShadowConfig(...)``), or None."""
        return self._shadow.report() if self._shadow is not None else None

    def _shadow_sample(
        self, model: str, given: Mapping[str, Any], primary: OutputMap
    ) -> tuple[dict[str, Array], OutputMap] | None:
        """For a sampled call with a free slot: copies of its inputs and of the primary's
        outputs (the caller may change its arrays after the call returns). Never raises."""
        recorder = self._shadow
        if recorder is None or not recorder.sampled():
            return None
        try:
            if not recorder.reserve(model):
                return None
        except Exception:  # the shadow never fails the primary call
            return None
        try:
            inputs = {name: np.array(value, copy=True) for name, value in given.items()}
            expected = {name: np.array(value, copy=True) for name, value in primary.items()}
        except Exception:
            recorder.release()
            return None
        return inputs, expected

    def _setup_channels(self) -> None:
        """Subclasses create their channel pool here."""

    def _triton_client_kwargs(self) -> dict[str, Any]:
        """tritonclient's arguments for a new channel. The TLS files are read (and checked)
        again each time, so rotated certificates are picked up by the next channel, and a
        broken one is a ``UsageError`` rather than a crash inside gRPC."""
        kwargs = self._triton_kwargs
        check_tls_files(
            kwargs["root_certificates"], kwargs["private_key"], kwargs["certificate_chain"]
        )
        return kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- per call options ----------------------------------------------------------------------
    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else _seconds(timeout, "timeout"))

    def _headers(self, headers: Headers | None) -> dict[str, str] | None:
        merged = {**self.headers, **check_headers(headers, "headers")} if headers else self.headers
        # W3C trace context of the caller's OpenTelemetry span, unless given explicitly.
        if "traceparent" not in merged:
            traced = trace_context()
            if traced:
                merged = {**merged, **traced}
        return merged or None

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
        what: str = "infer",
    ) -> Call:
        if not isinstance(model, str):
            raise UsageError(f"model must be a model name (str), got {model!r}")
        if not isinstance(version, str):
            raise UsageError(f"version must be a string such as '1' or '', got {version!r}")
        if not isinstance(request_id, str):
            raise UsageError(f"request_id must be a string, got {request_id!r}")
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int | np.integer)
            or not 0 <= priority <= _UINT64_MAX
        ):
            raise UsageError(
                f"priority must be an integer >= 0 (0: the model's default priority level), "
                f"got {priority!r}"
            )
        return Call(
            route=self._pick(),
            model=model,
            version=version,
            deadline=self._deadline(timeout),
            headers=self._headers(headers),
            compression=(
                self.compression if compression is None else _check_compression(compression)
            ),
            outputs=[InferRequestedOutput(name) for name in _output_names(outputs)] or None,
            request_id=request_id,
            priority=int(priority),
            queue_timeout_us=(
                None
                if queue_timeout is None
                else max(1, round(_seconds(queue_timeout, "queue_timeout") * 1e6))
            ),
            what=what,
        )

    # -- the retry decision ----------------------------------------------------------------------
    def _attempt_timeout(self, call: Call) -> float:
        """The gRPC deadline of the next attempt. A backoff is only started when it ends before
        the deadline; when the process wakes up too late all the same (a busy machine), the call
        fails with its last attempt's error, as when the backoff would not have fit, and not
        with a ``DeadlineExceeded`` saying that nothing could be sent."""
        try:
            return call.deadline.attempt_timeout(call.model)
        except DeadlineExceeded:
            if call.retrying is None:
                raise
            error, cause = call.retrying
            self._log_gave_up(call, error)
            raise error from cause

    def _log_gave_up(self, call: Call, error: ClientError) -> None:
        if self._log_failures and logger.isEnabledFor(logging.WARNING):
            logger.warning(
                "%s %s failed after %d attempt(s) in %.3f s: %s",
                call.what,
                _log_name(call),
                call.attempts,
                call.deadline.elapsed(),
                error,
            )

    def _retry_after(
        self, call: Call, exc: BaseException, channel: Channel[Any]
    ) -> tuple[ClientError, float | None, bool]:
        """After a failed attempt: the error, the wait before the next attempt (``None``: give
        up and raise the error) and whether to retire the channel."""
        error = self._map(exc, call)
        call.attempts += 1
        answered = error.status is not None and not isinstance(
            error, TransientError | DeadlineExceeded | Cancelled
        )
        if answered:
            channel.answered = True
            self.retry_budget.record_answer()
        # A connection that worked and broke: reconnect (and re-resolve DNS) on a new channel.
        # A channel that never reached the server is kept: gRPC reconnects it with backoff.
        retire = isinstance(error, Unavailable) and channel.answered
        delay = self.retry.next_delay(error, call.attempts, call.deadline)
        if delay is not None and not self.retry_budget.try_spend():
            delay = None
            error.note_retry_budget_spent()
        if delay is None:
            self._log_gave_up(call, error)
            return error, delay, retire
        call.retrying = (error, exc)
        if self._log_failures and logger.isEnabledFor(logging.WARNING):
            logger.warning(
                "%s %s: attempt %d failed (%s); retrying in %.3f s, %.3f s left",
                call.what,
                _log_name(call),
                call.attempts,
                error.status or type(error).__name__,
                delay,
                call.deadline.remaining() - delay,
            )
        return error, delay, retire

    def _answered(self, call: Call, channel: Channel[Any]) -> None:
        """After a successful attempt."""
        call.retrying = None
        channel.answered = True
        self.retry_budget.record_answer()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s ok in %.2f ms (attempt %d)",
                call.what,
                _log_name(call),
                call.deadline.elapsed() * 1000.0,
                call.attempts + 1,
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
        allow_empty: bool = False,
    ) -> tuple[list[tuple[TensorSpec, Array]], int]:
        if outputs:
            unknown = [name for name in _output_names(outputs) if name not in schema.output_names]
            if unknown:
                raise InvalidInput(
                    f"model '{schema.name}' has no output {', '.join(map(repr, unknown))}; "
                    f"its outputs are: {', '.join(schema.output_names)}",
                    tensor=unknown[0],
                    model=schema.name,
                )
        return prepare_inputs(schema, given, limit_batch=limit_batch, allow_empty=allow_empty)

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
            expected = self._seen_versions.get(schema.name, ())
            if version and version not in schema.versions and version not in expected:
                self._seen_versions.setdefault(schema.name, set()).add(version)
                self._forget(schema)
        names = [output.name for output in response.outputs]
        if schema is not None and len(names) > 1:  # the model's declared order, not the wire's
            rank = {name: i for i, name in enumerate(schema.output_names)}
            names.sort(key=lambda name: rank.get(name, len(rank)))
        return {name: result.as_numpy(name) for name in names}

    def _map(self, exc: BaseException, call: Call) -> ClientError:
        return from_exception(
            exc, model=call.model or None, timeout=call.deadline.timeout, tls=self.tls
        )

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

    def _remember(self, model: str, version: str, schema: ModelSchema) -> ModelSchema:
        """Cache ``schema`` as the server gave it; returns it."""
        key = (model, version)
        entry = self._schemas.get(key)
        before = entry[0] if entry is not None else self._forgotten.get(key)
        seen = set(schema.versions)
        if before is not None and dataclasses.replace(before, versions=schema.versions) == schema:
            # The same inputs and outputs as the schema it replaces: a version was added, or
            # behind a canary (or during a blue/green move) two servers answer with different
            # versions of the same model. Answers from any version seen are expected, so that
            # they do not refetch the metadata each time (_decode).
            seen |= self._seen_versions.get(model, set(before.versions))
        self._seen_versions[model] = seen
        self._forgotten.pop(key, None)
        self._schemas[key] = (schema, time.monotonic())
        return schema

    def _forget(self, schema: ModelSchema) -> None:
        for key, (cached, _) in list(self._schemas.items()):
            if cached is schema:
                self._schemas.pop(key, None)
                self._forgotten[key] = cached
        for route in self._routes:
            route._forget(schema)

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
        """``infer_many``'s arrays (checked once, whole), their datatypes, and the chunks
        (none for a batch of 0 rows: see ``_empty_outputs``)."""
        if validate:
            prepared, batch = self._validated(
                schema, given, outputs, limit_batch=False, allow_empty=True
            )
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
        limit = (
            self.max_concurrency
            if max_concurrency is None
            else _count(max_concurrency, "max_concurrency")
        )
        return max(1, min(limit, chunks))

    @staticmethod
    def _concat(results: Sequence[OutputMap]) -> OutputMap:
        if len(results) == 1:
            return results[0]
        return {name: np.concatenate([r[name] for r in results], axis=0) for name in results[0]}

    @staticmethod
    def _empty_outputs(schema: ModelSchema, outputs: Sequence[str] | None) -> OutputMap:
        """``infer_many`` of 0 rows: nothing is sent; every (requested) output with 0 rows."""
        names = _output_names(outputs) or list(schema.output_names)
        empty: OutputMap = {}
        for spec in schema.outputs:
            if spec.name in names:
                sample = schema.sample_shape(spec)
                shape = (0, *(max(d, 0) for d in sample))
                empty[spec.name] = np.empty(shape, dtype=numpy_dtype(spec.datatype))
        return empty

    @staticmethod
    def _in_chunk(error: ClientError, part: slice, total: int) -> ClientError:
        """An error from the request that carried rows ``part`` of a batch: row numbers the
        server gave (counted within that request) become rows of the whole batch."""
        if not isinstance(error, InvalidInput) or error.status is None:
            return error  # client-side checks already count rows in the whole batch
        start, stop = part.start or 0, min(part.stop, total)
        if start == 0 and stop == total:
            return error  # the request carried the whole batch
        text = str(error)
        if start:
            text = _ROW.sub(lambda m: f"{m.group(1)} {int(m.group(2)) + start}", text)
        text = (
            text.replace("): ", f"; request with rows {start}..{stop - 1} of {total}): ", 1)
            if "): " in text
            else f"{text} (request with rows {start}..{stop - 1} of {total})"
        )
        renumbered = InvalidInput(
            text,
            tensor=error.tensor,
            status=error.status,
            model=error.model,
            server_message=error.server_message,
        )
        renumbered.rows = (start, stop)
        return renumbered


class _SmoothWeights:
    """Smooth weighted round-robin (as nginx and HAProxy balance): each pick goes to the
    endpoint furthest behind its share, so any run of calls splits as the weights say, exactly
    to within one call per endpoint, and the endpoints interleave (95/5: one call in twenty)."""

    def __init__(self, weights: Sequence[float]) -> None:
        self.weights = list(weights)
        self.total = sum(self.weights)
        self.current = [0.0] * len(self.weights)
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            for i, weight in enumerate(self.weights):
                self.current[i] += weight
            best = max(range(len(self.current)), key=self.current.__getitem__)
            self.current[best] -= self.total
            return best


def _check_url(url: object, option: str) -> None:
    if not isinstance(url, str) or not url or "://" in url or url.strip() != url:
        raise UsageError(
            f"{option} must be host:port of Triton's gRPC endpoint (e.g. localhost:8001), "
            f"got {url!r}"
        )


def _check_weights(weights: object, url: str | None) -> list[tuple[str, float]]:
    """``weights={url: weight}`` as (url, weight) pairs; [] without weights."""
    if weights is None:
        return []
    if url is not None:
        raise UsageError(
            "give url or weights, not both: weights={url_a: 95, url_b: 5} names every endpoint"
        )
    if not isinstance(weights, Mapping) or not weights:
        raise UsageError(
            f"weights must map endpoints to weights, e.g. {{'a:8001': 95, 'b:8001': 5}}, "
            f"got {weights!r}"
        )
    split = []
    for endpoint, weight in weights.items():
        _check_url(endpoint, "weights: each endpoint")
        number = _number(weight, f"weights[{endpoint!r}]")
        if not 0 <= number < math.inf:
            raise UsageError(f"weights[{endpoint!r}] must be >= 0 (finite), got {weight!r}")
        split.append((endpoint, number))
    if sum(w for _, w in split) <= 0:
        raise UsageError(f"weights: at least one endpoint needs a weight above 0, got {weights!r}")
    return split


def chunk_slices(batch: int, size: int) -> list[slice]:
    """``[0:size], [size:2*size], ...`` covering ``batch`` rows in order."""
    if size < 1:
        raise UsageError(f"chunk size must be >= 1, got {size}")
    return [slice(start, min(start + size, batch)) for start in range(0, batch, size)]


def split_arrays(arrays: Mapping[str, Array], part: slice) -> dict[str, Array]:
    return {name: array[part] for name, array in arrays.items()}


# "row 12" in a server message (e.g. "input 'country' row 12: empty category").
_ROW = re.compile(r"\b(row)\s+(\d+)\b")


def check_headers(headers: Headers | None, option: str) -> dict[str, str]:
    """Headers as gRPC metadata: keys lowercased and checked (letters, digits, ``-_.``; not
    ``grpc-``), values printable ASCII. A ``UsageError`` names the header at fault."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise UsageError(f"{option} must be a mapping of name to value, got {headers!r}")
    checked: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError(
                f"{option}: header names and values must be str, got {key!r}: {value!r}"
            )
        name = key.lower()  # gRPC metadata keys are lowercase; HTTP headers ignore case
        if not _HEADER_KEY.match(name) or name.startswith("grpc-"):
            raise UsageError(
                f"{option}: {key!r} is not a valid gRPC metadata key (lowercase letters, digits, "
                "'-', '_', '.'; not starting with 'grpc-')"
            )
        if name.endswith("-bin") or not all(" " <= c <= "~" for c in value):
            raise UsageError(
                f"{option}: the value of {key!r} must be printable ASCII "
                "(binary '-bin' headers are not supported)"
            )
        checked[name] = value
    return checked


def check_tls_files(
    root_certificates: StrPath | None,
    private_key: StrPath | None,
    certificate_chain: StrPath | None,
) -> None:
    """TLS files that gRPC can use, checked with Python's own ssl module before any channel:
    gRPC aborts the whole process (SIGABRT) on a private key without a certificate chain or
    the reverse, and reports unreadable or mismatched files only as a failed connection."""
    if (private_key is None) != (certificate_chain is None):
        given, missing = (
            ("private_key (--key)", "certificate_chain (--cert)")
            if certificate_chain is None
            else ("certificate_chain (--cert)", "private_key (--key)")
        )
        raise UsageError(
            f"TLS: {given} without {missing}: a client certificate needs both (or neither, "
            "for a server that does not ask for one)"
        )
    files = {
        "root_certificates (--ca)": root_certificates,
        "private_key (--key)": private_key,
        "certificate_chain (--cert)": certificate_chain,
    }
    for option, path in files.items():
        if path is None:
            continue
        if not os.path.isfile(path):
            raise UsageError(f"TLS: {option}: no such file {os.fspath(path)!r}")
        try:
            with open(path, "rb") as handle:
                head = handle.read(1 << 20)
        except OSError as exc:
            raise UsageError(
                f"TLS: {option}: cannot read {os.fspath(path)!r} ({exc.strerror})"
            ) from None
        wanted = b"PRIVATE KEY-----" if "key" in option else b"-----BEGIN CERTIFICATE-----"
        if wanted not in head:
            kind = "a PEM private key" if "key" in option else "PEM certificates"
            raise UsageError(f"TLS: {option}: {os.fspath(path)!r} does not hold {kind}")
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    try:
        if root_certificates is not None:
            context.load_verify_locations(cafile=os.fspath(root_certificates))
        if certificate_chain is not None and private_key is not None:
            context.load_cert_chain(os.fspath(certificate_chain), os.fspath(private_key))
    except (stdlib_ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        which = (
            "the private key does not match the certificate chain"
            if "KEY_VALUES_MISMATCH" in str(exc)
            else f"cannot load the files ({reason})"
        )
        raise UsageError(f"TLS: {which}") from None


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise UsageError(f"{name} must be a number, got {value!r}")
    return float(value)


def _seconds(value: object, name: str) -> float:
    seconds = _number(value, name)
    if not 0 < seconds < math.inf:
        raise UsageError(f"{name} must be > 0 seconds (finite), got {value!r}")
    return seconds


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _output_names(outputs: Sequence[str] | None) -> list[str]:
    if outputs is None:
        return []
    if isinstance(outputs, str | bytes) or not isinstance(outputs, Sequence | set | frozenset):
        raise UsageError(
            f"outputs must be a list of output names, e.g. ['LABELS'], got {outputs!r}"
        )
    names = list(outputs)
    bad = [name for name in names if not isinstance(name, str) or not name]
    if bad:
        raise UsageError(f"outputs must be output names (non-empty str), got {bad[0]!r}")
    return names


def _log_name(call: Call) -> str:
    if not call.model:
        return "server"
    return f"'{call.model}'" + (f" version {call.version}" if call.version else "")


def _check_compression(compression: str | None) -> str | None:
    if compression is not None and (
        not isinstance(compression, str) or compression not in _COMPRESSIONS
    ):
        raise UsageError(f"compression must be one of {_COMPRESSIONS} or None, got {compression!r}")
    return compression


def _path(path: StrPath | None) -> str | None:
    return None if path is None else os.fspath(path)
