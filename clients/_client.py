"""The synchronous client (threads welcome: one client can serve a whole thread pool)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

import grpc
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from ._base import BaseClient, Call, SchemaChanged
from ._errors import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    ModelNotFound,
    NotReady,
    Unavailable,
)
from ._health import HealthReport, combine_reports
from ._pool import ChannelBook, SyncChannels
from ._retry import Deadline
from ._schema import ModelSchema
from ._types import Compression, Headers, InputMap, OutputMap, TensorLike
from ._validation import prepare_inputs

__all__ = ["InferenceClient"]

T = TypeVar("T")


class InferenceClient(BaseClient):
    """A typed, validating, retrying gRPC client for a Triton Inference Server.

        from triton_deploy.clients import InferenceClient

        with InferenceClient("localhost:8001") as client:
            client.wait_until_ready(models=["digits"], timeout=60)
            out = client.infer("digits", IMAGES=images)        # images: uint8 [N, 8, 8]
            out["LABELS"], out["PROBS"]                         # int64 [N, 3], float32 [N, 3]
            big = client.infer_many("digits", IMAGES=many)      # any N: chunks, concurrently

    Inputs are checked against the model's metadata and config (fetched once per model,
    cached, refreshed when the server reports a change) before anything is sent.

    Parameters (all keyword-only except ``url``):

    - ``url``: Triton's gRPC endpoint, ``host:port``.
    - ``timeout``: default deadline of every call in seconds, retries included (10 s);
      override per call with ``timeout=``.
    - ``retry``: a ``RetryPolicy`` for transient failures (UNAVAILABLE, queue full);
      ``RetryPolicy.none()`` disables retries.
    - ``retry_budget``: a ``RetryBudget`` (token bucket) shared by all calls of this client,
      so that retries cannot multiply the load on a server that is down or overloaded; one
      per client by default, pass the same one to several clients to share it.
    - ``max_connection_age_s``: recycle the gRPC channel after this many seconds (60 s, minus
      up to 10 % jitter) so that traffic follows a blue/green switch behind a Kubernetes
      Service within that time; in-flight calls finish on the old channel. ``None`` keeps one
      channel forever (then only the server's ``--grpc-max-connection-age`` moves traffic).
    - ``max_concurrency``: default number of chunks ``infer_many`` sends at once (8).
    - ``metadata_ttl_s``: how long a model's cached metadata and config are trusted (60 s;
      ``None``: until the server says otherwise). They are refreshed at once when a response
      carries a model version the cache does not list, and when the server rejects inputs
      (INVALID_ARGUMENT) or the model (NOT_FOUND) that passed the cached checks: if the
      model changed, the inputs are checked again and the request is sent once more.
    - ``headers``: metadata sent with every call (e.g. an auth token); merged with per-call
      ``headers=``.
    - ``compression``: ``"gzip"`` or ``"deflate"`` for request messages; per call too.
    - ``ssl``, ``root_certificates``, ``private_key``, ``certificate_chain``: TLS (PEM file
      paths; giving any file turns ``ssl`` on; key and chain go together). The files are
      checked when the client is made (``UsageError``); a failed handshake raises
      ``TlsError``, not retried. ``creds``: a ready ``grpc.ChannelCredentials``.
    - ``channel_args``: extra gRPC channel arguments, overriding the defaults (message size
      limits, ``grpc.use_local_subchannel_pool``, short reconnect backoff).
    - ``weights``: instead of ``url``, several endpoints and their weights, e.g.
      ``{"triton-blue:8001": 95, "triton-green:8001": 5}``: each call goes to one of them
      (smooth weighted round-robin: any run of calls splits as the weights say), with its
      retries; each endpoint has its own channels and metadata cache. A canary by weight for
      callers of this client where no gateway splits requests (README, "Canary and shadow").
      ``health`` and ``wait_until_ready`` ask every endpoint.
    - ``shadow``: a ``ShadowConfig``: a sampled copy of ``infer``/``infer_many`` calls goes to
      another endpoint in the background, never delaying or failing the call, and the answers
      are compared (``shadow_stats``, log lines, prometheus_client counters).

    Errors are ``ClientError`` subclasses (see ``triton_deploy.clients``). Calls are logged to
    the ``triton_deploy.clients`` logger (DEBUG; retries and failures at WARNING). With the
    OpenTelemetry API installed, calls made inside a span carry its W3C ``traceparent``. The
    client is thread-safe; close it with ``close()`` or a ``with`` block.
    """

    _channels: SyncChannels[Any]

    def _setup_channels(self) -> None:
        book: ChannelBook[Any] = ChannelBook(self._new_triton_client, self.max_connection_age_s)
        self._channels = SyncChannels(book, _close_triton_client)
        self._schema_locks: dict[tuple[str, str], threading.Lock] = {}
        self._shadow_pool: ThreadPoolExecutor | None = None  # made at the first shadow copy
        self._shadow_pool_lock = threading.Lock()

    def _new_triton_client(self) -> Any:
        return grpcclient.InferenceServerClient(**self._triton_client_kwargs())

    def _plain(self, url: str, options: dict[str, Any]) -> InferenceClient:
        return InferenceClient(url, **options)

    @property
    def channels_opened(self) -> int:
        """How many gRPC channels this client has opened so far (recycling adds one each)."""
        return self._channels.book.created + sum(int(r.channels_opened) for r in self._routes)

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close every channel. Calls still running fail with ``Cancelled``/``Unavailable``."""
        self._channels.close()
        for route in self._routes:
            route.close()
        if self._shadow is not None:
            self._shadow.closed = True  # copies still running are not counted
            with self._shadow_pool_lock:
                pool, self._shadow_pool = self._shadow_pool, None
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            self._shadow_client.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the retry loop ------------------------------------------------------------------------
    def _rpc(self, call: Call, send: Callable[[Any, float], T]) -> T:
        """``send(triton_client, attempt_timeout)`` with retries, within the call's deadline."""
        if call.route is not None and call.route is not self:  # weights: the call's endpoint
            route: InferenceClient = call.route
            return route._rpc(call, send)
        while True:
            attempt_timeout = self._attempt_timeout(call)
            channel = self._channels.acquire()
            try:
                result = send(channel.client, attempt_timeout)
            except (InferenceServerException, grpc.RpcError) as exc:
                error, delay, retire = self._retry_after(call, exc, channel)
                if retire:
                    self._channels.discard(channel)  # reconnect (and re-resolve) on retry
                if delay is None:
                    raise error from exc
            else:
                self._answered(call, channel)
                return result
            finally:
                self._channels.release(channel)
            time.sleep(delay)

    # -- metadata ------------------------------------------------------------------------------
    def model_schema(
        self,
        model: str,
        version: str = "",
        *,
        refresh: bool = False,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> ModelSchema:
        """The model's inputs, outputs and max_batch_size (cached; ``refresh=True`` refetches)."""
        call = self._options(
            model, version=version, timeout=timeout, headers=headers, what="model_schema"
        )
        home: InferenceClient = call.route or self
        return home._schema(call, stale=home._cached(model, version) if refresh else None)

    def _schema(self, call: Call, *, stale: ModelSchema | None = None) -> ModelSchema:
        if call.route is not None and call.route is not self:  # weights: the endpoint's cache
            route: InferenceClient = call.route
            return route._schema(call, stale=stale)
        cached = self._cached(call.model, call.version)
        if cached is not None and cached is not stale:
            return cached
        key = (call.model, call.version)
        lock = self._schema_locks.setdefault(key, threading.Lock())
        with lock:  # one fetch per model, however many threads ask at once
            cached = self._cached(call.model, call.version)
            if cached is not None and cached is not stale:
                return cached
            metadata = self._rpc(
                call,
                lambda c, t: c.get_model_metadata(
                    call.model, call.version, headers=call.headers, client_timeout=t
                ),
            )
            config = self._rpc(
                call,
                lambda c, t: c.get_model_config(
                    call.model, call.version, headers=call.headers, client_timeout=t
                ),
            )
            schema = ModelSchema.from_responses(metadata, config)
            return self._remember(call.model, call.version, schema)

    # -- inference -----------------------------------------------------------------------------
    def infer(
        self,
        model: str,
        inputs: InputMap | None = None,
        /,
        *,
        version: str = "",
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
        compression: Compression | None = None,
        validate: bool = True,
        request_id: str = "",
        priority: int = 0,
        queue_timeout: float | None = None,
        **named_inputs: TensorLike,
    ) -> OutputMap:
        """Run ``model`` once; returns every output (or those named in ``outputs``) by name.

            client.infer("digits", IMAGES=images)
            client.infer("ctr_xgb", {"input__0": features}, timeout=0.5)

        Inputs go as keywords or as one mapping (for names that are not identifiers or that
        clash with an option). ``validate=False`` sends the arrays as they are, typed from
        their numpy dtypes, and lets the server judge them.

        ``timeout`` is this call's deadline in seconds (retries included; default: the
        client's). ``queue_timeout`` asks Triton to drop the request if it waits longer than
        this in the model's queue (only where the model's queue policy has
        ``allow_timeout_override``); it then fails with ``ServerOverloaded``.
        ``priority`` and ``request_id`` are passed to Triton as they are.
        """
        call = self._options(
            model,
            version=version,
            timeout=timeout,
            headers=headers,
            compression=compression,
            outputs=outputs,
            request_id=request_id,
            priority=priority,
            queue_timeout=queue_timeout,
        )
        given = self._merge_inputs(inputs, named_inputs)
        if not validate:
            out = self._send(call, self._raw_request(given), None)
        else:
            schema = self._schema(call)
            prepared, _ = self._validated(schema, given, outputs)
            out = self._send_checked(call, schema, given, self._checked_request(prepared))
        if self._shadow is not None:
            self._shadow_submit("infer", model, given, outputs, out)
        return out

    def _send(self, call: Call, request: list[Any], schema: ModelSchema | None) -> OutputMap:
        result = self._rpc(
            call,
            lambda c, t: c.infer(
                call.model,
                request,
                model_version=call.version,
                outputs=call.outputs,
                request_id=call.request_id,
                priority=call.priority,
                timeout=call.queue_timeout_us,
                client_timeout=t,
                headers=call.headers,
                compression_algorithm=call.compression,
            ),
        )
        return self._decode(result, schema)

    def _send_checked(
        self,
        call: Call,
        schema: ModelSchema,
        given: Mapping[str, Any],
        request: list[Any],
        *,
        replan: bool = False,
    ) -> OutputMap:
        try:
            return self._send(call, request, schema)
        except ClientError as error:
            if not self._maybe_stale(error):
                raise
            # The inputs passed the cached metadata but the server refused them (or the model):
            # maybe it changed. Refetch; when it did change, check again and resend once.
            self._forget(schema)
            fresh = self._schema(call)
            if fresh == schema or isinstance(error, ModelNotFound):
                raise
            if replan:  # infer_many: chunk sizes may have changed too
                raise SchemaChanged(fresh) from error
            prepared, _ = prepare_inputs(fresh, given, limit_batch=True)
            return self._send(call, self._checked_request(prepared), fresh)

    def infer_many(
        self,
        model: str,
        inputs: InputMap | None = None,
        /,
        *,
        chunk_size: int | None = None,
        max_concurrency: int | None = None,
        version: str = "",
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
        headers: Headers | None = None,
        compression: Compression | None = None,
        validate: bool = True,
        queue_timeout: float | None = None,
        **named_inputs: TensorLike,
    ) -> OutputMap:
        """Like ``infer`` for a batch of any size: split into chunks of ``chunk_size`` rows
        (default: the model's max_batch_size), sent ``max_concurrency`` at a time, results
        concatenated in input order. ``timeout`` is the deadline of each chunk's call.
        The first chunk that fails stops the chunks not yet sent and its error is raised; row
        numbers in the server's message count rows of the whole batch. A batch of 0 rows
        sends nothing and returns 0-row outputs.
        """
        # Resolved here, in the caller's thread: the chunks run on worker threads, where the
        # caller's OpenTelemetry context (traceparent) is not current.
        call = self._options(
            model,
            version=version,
            timeout=timeout,
            headers=headers,
            compression=compression,
            outputs=outputs,
            queue_timeout=queue_timeout,
            what="model_schema",
        )
        options: dict[str, Any] = {
            "version": version,
            "timeout": timeout,
            "headers": call.headers,
            "compression": compression,
            "outputs": outputs,
            "queue_timeout": queue_timeout,
        }
        given = self._merge_inputs(inputs, named_inputs)
        schema = self._schema(call)
        many = (model, options, given, outputs, validate, chunk_size, max_concurrency)
        try:
            out = self._many(schema, *many, replan=True)
        except SchemaChanged as changed:
            # The model changed on the server (e.g. a new max_batch_size): plan again, once.
            out = self._many(changed.schema, *many, replan=False)
        if self._shadow is not None:
            self._shadow_submit("infer_many", model, given, outputs, out)
        return out

    # -- shadow --------------------------------------------------------------------------------
    def _shadow_submit(
        self,
        method: str,
        model: str,
        given: Mapping[str, Any],
        outputs: Sequence[str] | None,
        primary: OutputMap,
    ) -> None:
        """A sampled copy of the call to the shadow, in the background (see ``ShadowConfig``)."""
        sample = self._shadow_sample(model, given, primary)
        if sample is None:
            return
        recorder = self._shadow
        assert recorder is not None
        try:
            with self._shadow_pool_lock:
                if self._shadow_pool is None and not recorder.closed:
                    self._shadow_pool = ThreadPoolExecutor(
                        recorder.config.max_in_flight, thread_name_prefix="tdeploy-shadow"
                    )
                pool = self._shadow_pool
            if pool is None:
                raise RuntimeError("closed")
            pool.submit(self._shadow_call, method, model, *sample, outputs)
        except Exception:  # closed meanwhile: the shadow never fails the primary call
            recorder.release()

    def _shadow_call(
        self,
        method: str,
        model: str,
        inputs: dict[str, Any],
        expected: OutputMap,
        outputs: Sequence[str] | None,
    ) -> None:
        recorder = self._shadow
        assert recorder is not None
        try:
            answer = getattr(self._shadow_client, method)(model, inputs, outputs=outputs)
        except Exception as exc:  # any failure of the shadow is a result, never raised
            recorder.record(model, expected, None, error=f"{type(exc).__name__}: {exc}")
        else:
            recorder.record(model, expected, answer)
        finally:
            recorder.release()

    def _many(
        self,
        schema: ModelSchema,
        model: str,
        options: dict[str, Any],
        given: Mapping[str, Any],
        outputs: Sequence[str] | None,
        validate: bool,
        chunk_size: int | None,
        max_concurrency: int | None,
        *,
        replan: bool,
    ) -> OutputMap:
        arrays, datatypes, parts = self._plan_many(schema, given, outputs, validate, chunk_size)
        if not parts:
            return self._empty_outputs(schema, outputs)
        total = parts[-1].stop
        failed = threading.Event()  # the first failure stops chunks not yet sent

        def run(part: slice) -> OutputMap:
            if failed.is_set():
                raise Cancelled("infer_many: an earlier chunk failed", model=model)
            call = self._options(model, **options)
            chunk, request = self._chunk_request(arrays, datatypes, part)
            try:
                if not validate:
                    return self._send(call, request, None)
                return self._send_checked(call, schema, chunk, request, replan=replan)
            except ClientError as error:
                failed.set()
                renumbered = self._in_chunk(error, part, total)
                if renumbered is error:
                    raise
                raise renumbered from error

        if len(parts) == 1:
            return run(parts[0])
        workers = self._concurrency(max_concurrency, len(parts))
        with ThreadPoolExecutor(workers, thread_name_prefix="tdeploy-infer-many") as pool:
            futures = [pool.submit(run, part) for part in parts]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                failed.set()
                for future in futures:
                    future.cancel()
                raise
        return self._concat(results)

    # -- health --------------------------------------------------------------------------------
    def is_server_live(
        self, *, timeout: float | None = None, headers: Headers | None = None
    ) -> bool:
        """Whether the server answers (``/v2/health/live``); with ``weights``, every one."""
        if self._routes:
            return all(r.is_server_live(timeout=timeout, headers=headers) for r in self._routes)
        call = self._options("", timeout=timeout, headers=headers, what="server_live")
        return bool(
            self._rpc(call, lambda c, t: c.is_server_live(headers=call.headers, client_timeout=t))
        )

    def is_server_ready(
        self, *, timeout: float | None = None, headers: Headers | None = None
    ) -> bool:
        """Whether the server is ready for inference (``/v2/health/ready``); with ``weights``,
        every one."""
        if self._routes:
            return all(r.is_server_ready(timeout=timeout, headers=headers) for r in self._routes)
        call = self._options("", timeout=timeout, headers=headers, what="server_ready")
        return bool(
            self._rpc(call, lambda c, t: c.is_server_ready(headers=call.headers, client_timeout=t))
        )

    def is_model_ready(
        self,
        model: str,
        version: str = "",
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> bool:
        """Whether ``model`` (a given ``version``, or its default) is loaded and ready (with
        ``weights``: on every endpoint)."""
        if self._routes:
            return all(
                r.is_model_ready(model, version, timeout=timeout, headers=headers)
                for r in self._routes
            )
        call = self._options(
            model, version=version, timeout=timeout, headers=headers, what="model_ready"
        )
        try:
            return bool(
                self._rpc(
                    call,
                    lambda c, t: c.is_model_ready(
                        model, version, headers=call.headers, client_timeout=t
                    ),
                )
            )
        except ModelNotFound:
            return False

    def health(
        self,
        models: Iterable[str] = (),
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> HealthReport:
        """Server live/ready and each model's readiness; an unreachable server is reported
        (``error``), not raised. With ``weights``: every endpoint's, together."""
        names = list(models)
        if self._routes:
            return combine_reports(
                self.url, [r.health(names, timeout=timeout, headers=headers) for r in self._routes]
            )
        try:
            live = self.is_server_live(timeout=timeout, headers=headers)
            ready = self.is_server_ready(timeout=timeout, headers=headers)
            states = {m: self.is_model_ready(m, timeout=timeout, headers=headers) for m in names}
        except (Unavailable, DeadlineExceeded) as error:
            return HealthReport(self.url, False, False, dict.fromkeys(names, False), str(error))
        return HealthReport(self.url, live, ready, states)

    def wait_until_ready(
        self,
        models: Iterable[str] = (),
        *,
        timeout: float = 60.0,
        poll_interval: float = 0.5,
        headers: Headers | None = None,
    ) -> HealthReport:
        """Block until the server and ``models`` are ready; ``NotReady`` after ``timeout`` s."""
        names = list(models)
        deadline = Deadline(timeout)
        while True:
            per_poll = max(min(self.timeout, deadline.remaining()), 0.01)
            report = self.health(names, timeout=per_poll, headers=headers)
            if report.ok:
                return report
            if deadline.remaining() <= poll_interval:
                raise NotReady(f"not ready after {timeout:g} s: {report.summary()}", report=report)
            time.sleep(poll_interval)


def _close_triton_client(client: Any) -> None:
    client.close()
