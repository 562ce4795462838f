"""The asyncio twin of ``InferenceClient``: same methods and arguments, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import tritonclient.grpc.aio as aioclient
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
from ._pool import AsyncChannels, ChannelBook
from ._retry import Deadline
from ._schema import ModelSchema
from ._types import Compression, Headers, InputMap, OutputMap, TensorLike
from ._validation import prepare_inputs

__all__ = ["AsyncInferenceClient"]

T = TypeVar("T")


class AsyncInferenceClient(BaseClient):
    """The asyncio twin of ``InferenceClient`` (grpc.aio): same options, same methods, awaited.

        from triton_deploy.clients import AsyncInferenceClient

        async with AsyncInferenceClient("localhost:8001") as client:
            await client.wait_until_ready(models=["digits"])
            out = await client.infer("digits", IMAGES=images)
            big = await client.infer_many("digits", IMAGES=many, max_concurrency=16)

    See ``InferenceClient`` for the parameters and the behaviour (validation, deadlines,
    retries, connection recycling). Use one client per event loop; close it with
    ``await client.aclose()`` or ``async with``.
    """

    _channels: AsyncChannels[Any]

    def _setup_channels(self) -> None:
        # tritonclient's aio client is created lazily, inside the running event loop.
        book: ChannelBook[Any] = ChannelBook(self._new_triton_client, self.max_connection_age_s)
        self._channels = AsyncChannels(book, _close_triton_client)
        self._schema_fetches: dict[tuple[str, str], asyncio.Future[ModelSchema]] = {}
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    def _new_triton_client(self) -> Any:
        return aioclient.InferenceServerClient(**self._triton_client_kwargs())

    def _plain(self, url: str, options: dict[str, Any]) -> AsyncInferenceClient:
        return AsyncInferenceClient(url, **options)

    @property
    def channels_opened(self) -> int:
        """See ``InferenceClient.channels_opened``."""
        return self._channels.book.created + sum(int(r.channels_opened) for r in self._routes)

    # -- lifecycle -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """See ``InferenceClient.close``."""
        await self._channels.close()
        for route in self._routes:
            await route.aclose()
        if self._shadow is not None:
            self._shadow.closed = True  # copies still running are not counted
            tasks = list(self._shadow_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._shadow_client.aclose()

    async def __aenter__(self) -> AsyncInferenceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the retry loop ------------------------------------------------------------------------
    async def _rpc(self, call: Call, send: Callable[[Any, float], Awaitable[T]]) -> T:
        """See ``InferenceClient._rpc``."""
        if call.route is not None and call.route is not self:  # weights: the call's endpoint
            route: AsyncInferenceClient = call.route
            return await route._rpc(call, send)
        while True:
            attempt_timeout = self._attempt_timeout(call)
            # The book's checkout/checkin are synchronous; only closing a channel is awaited,
            # which keeps the per-call cost of the common path at two plain method calls.
            book = self._channels.book
            channel, drained = book.checkout()
            if drained is not None:
                await self._channels.close_channel(drained)
            try:
                result = await send(channel.client, attempt_timeout)
            except (InferenceServerException, grpc.RpcError) as exc:
                error, delay, retire = self._retry_after(call, exc, channel)
                if retire:
                    await self._channels.discard(channel)
                if delay is None:
                    raise error from exc
            else:
                self._answered(call, channel)
                return result
            finally:
                if book.checkin(channel):
                    await self._channels.close_channel(channel)
            await asyncio.sleep(delay)

    # -- metadata ------------------------------------------------------------------------------
    async def model_schema(
        self,
        model: str,
        version: str = "",
        *,
        refresh: bool = False,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> ModelSchema:
        """See ``InferenceClient.model_schema``."""
        call = self._options(
            model, version=version, timeout=timeout, headers=headers, what="model_schema"
        )
        home: AsyncInferenceClient = call.route or self
        return await home._schema(call, stale=home._cached(model, version) if refresh else None)

    async def _schema(self, call: Call, *, stale: ModelSchema | None = None) -> ModelSchema:
        if call.route is not None and call.route is not self:  # weights: the endpoint's cache
            route: AsyncInferenceClient = call.route
            return await route._schema(call, stale=stale)
        cached = self._cached(call.model, call.version)
        if cached is not None and cached is not stale:
            return cached
        key = (call.model, call.version)
        while (pending := self._schema_fetches.get(key)) is not None:
            # Another task is fetching it: share its answer (and fetch ourselves if that task
            # was cancelled rather than this one).
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
        future: asyncio.Future[ModelSchema] = asyncio.get_running_loop().create_future()
        self._schema_fetches[key] = future
        try:
            metadata = await self._rpc(
                call,
                lambda c, t: c.get_model_metadata(
                    call.model, call.version, headers=call.headers, client_timeout=t
                ),
            )
            config = await self._rpc(
                call,
                lambda c, t: c.get_model_config(
                    call.model, call.version, headers=call.headers, client_timeout=t
                ),
            )
            schema = ModelSchema.from_responses(metadata, config)
            schema = self._remember(call.model, call.version, schema)
            future.set_result(schema)
            return schema
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            self._schema_fetches.pop(key, None)

    # -- inference -----------------------------------------------------------------------------
    async def infer(
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
        """See ``InferenceClient.infer``."""
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
            out = await self._send(call, self._raw_request(given), None)
        else:
            schema = await self._schema(call)
            prepared, _ = self._validated(schema, given, outputs)
            out = await self._send_checked(call, schema, given, self._checked_request(prepared))
        if self._shadow is not None:
            self._shadow_submit("infer", model, given, outputs, out)
        return out

    async def _send(self, call: Call, request: list[Any], schema: ModelSchema | None) -> OutputMap:
        result = await self._rpc(
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

    async def _send_checked(
        self,
        call: Call,
        schema: ModelSchema,
        given: Mapping[str, Any],
        request: list[Any],
        *,
        replan: bool = False,
    ) -> OutputMap:
        try:
            return await self._send(call, request, schema)
        except ClientError as error:
            if not self._maybe_stale(error):
                raise
            self._forget(schema)
            fresh = await self._schema(call)
            if fresh == schema or isinstance(error, ModelNotFound):
                raise
            if replan:  # infer_many: chunk sizes may have changed too
                raise SchemaChanged(fresh) from error
            prepared, _ = prepare_inputs(fresh, given, limit_batch=True)
            return await self._send(call, self._checked_request(prepared), fresh)

    async def infer_many(
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
        """See ``InferenceClient.infer_many``."""
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
        schema = await self._schema(call)
        many = (model, options, given, outputs, validate, chunk_size, max_concurrency)
        try:
            out = await self._many(schema, *many, replan=True)
        except SchemaChanged as changed:
            # The model changed on the server (e.g. a new max_batch_size): plan again, once.
            out = await self._many(changed.schema, *many, replan=False)
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
        """See ``InferenceClient._shadow_submit`` (here a task on the running loop)."""
        sample = self._shadow_sample(model, given, primary)
        if sample is None:
            return
        recorder = self._shadow
        assert recorder is not None
        try:
            task = asyncio.get_running_loop().create_task(
                self._shadow_call(method, model, *sample, outputs)
            )
        except Exception:  # the shadow never fails the primary call
            recorder.release()
            return
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow_call(
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
            answer = await getattr(self._shadow_client, method)(model, inputs, outputs=outputs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the shadow is a result, never raised
            recorder.record(model, expected, None, error=f"{type(exc).__name__}: {exc}")
        else:
            recorder.record(model, expected, answer)
        finally:
            recorder.release()

    async def _many(
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
        limit = asyncio.Semaphore(self._concurrency(max_concurrency, len(parts)))
        failed = asyncio.Event()  # the first failure stops chunks not yet sent

        async def run(part: slice) -> OutputMap:
            async with limit:
                if failed.is_set():
                    raise Cancelled("infer_many: an earlier chunk failed", model=model)
                call = self._options(model, **options)
                chunk, request = self._chunk_request(arrays, datatypes, part)
                try:
                    if not validate:
                        return await self._send(call, request, None)
                    return await self._send_checked(call, schema, chunk, request, replan=replan)
                except ClientError as error:
                    failed.set()
                    renumbered = self._in_chunk(error, part, total)
                    if renumbered is error:
                        raise
                    raise renumbered from error

        if len(parts) == 1:
            return await run(parts[0])
        tasks = [asyncio.ensure_future(run(part)) for part in parts]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return self._concat(results)

    # -- health --------------------------------------------------------------------------------
    async def is_server_live(
        self, *, timeout: float | None = None, headers: Headers | None = None
    ) -> bool:
        """See ``InferenceClient.is_server_live``."""
        if self._routes:
            return all(
                [await r.is_server_live(timeout=timeout, headers=headers) for r in self._routes]
            )
        call = self._options("", timeout=timeout, headers=headers, what="server_live")
        return bool(
            await self._rpc(
                call, lambda c, t: c.is_server_live(headers=call.headers, client_timeout=t)
            )
        )

    async def is_server_ready(
        self, *, timeout: float | None = None, headers: Headers | None = None
    ) -> bool:
        """See ``InferenceClient.is_server_ready``."""
        if self._routes:
            return all(
                [await r.is_server_ready(timeout=timeout, headers=headers) for r in self._routes]
            )
        call = self._options("", timeout=timeout, headers=headers, what="server_ready")
        return bool(
            await self._rpc(
                call, lambda c, t: c.is_server_ready(headers=call.headers, client_timeout=t)
            )
        )

    async def is_model_ready(
        self,
        model: str,
        version: str = "",
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> bool:
        """See ``InferenceClient.is_model_ready``."""
        if self._routes:
            return all(
                [
                    await r.is_model_ready(model, version, timeout=timeout, headers=headers)
                    for r in self._routes
                ]
            )
        call = self._options(
            model, version=version, timeout=timeout, headers=headers, what="model_ready"
        )
        try:
            return bool(
                await self._rpc(
                    call,
                    lambda c, t: c.is_model_ready(
                        model, version, headers=call.headers, client_timeout=t
                    ),
                )
            )
        except ModelNotFound:
            return False

    async def health(
        self,
        models: Iterable[str] = (),
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
    ) -> HealthReport:
        """See ``InferenceClient.health``."""
        names = list(models)
        if self._routes:
            reports = [
                await r.health(names, timeout=timeout, headers=headers) for r in self._routes
            ]
            return combine_reports(self.url, reports)
        try:
            live = await self.is_server_live(timeout=timeout, headers=headers)
            ready = await self.is_server_ready(timeout=timeout, headers=headers)
            states = {
                m: await self.is_model_ready(m, timeout=timeout, headers=headers) for m in names
            }
        except (Unavailable, DeadlineExceeded) as error:
            return HealthReport(self.url, False, False, dict.fromkeys(names, False), str(error))
        return HealthReport(self.url, live, ready, states)

    async def wait_until_ready(
        self,
        models: Iterable[str] = (),
        *,
        timeout: float = 60.0,
        poll_interval: float = 0.5,
        headers: Headers | None = None,
    ) -> HealthReport:
        """See ``InferenceClient.wait_until_ready``."""
        names = list(models)
        deadline = Deadline(timeout)
        while True:
            per_poll = max(min(self.timeout, deadline.remaining()), 0.01)
            report = await self.health(names, timeout=per_poll, headers=headers)
            if report.ok:
                return report
            if deadline.remaining() <= poll_interval:
                raise NotReady(f"not ready after {timeout:g} s: {report.summary()}", report=report)
            await asyncio.sleep(poll_interval)


async def _close_triton_client(client: Any) -> None:
    await client.close()
