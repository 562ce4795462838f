"""What the client puts on the wire besides the request: the caller's W3C trace context, the
bearer token and headers, and its log records. A real gRPC server (grpcio, Triton's service
definition) records the metadata each call arrives with."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.clients import AsyncInferenceClient, InferenceClient, RetryPolicy, Unavailable


class Recorder(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def _record(self, context: Any) -> None:
        with self.lock:
            self.calls.append({k: v for k, v in context.invocation_metadata()})

    def ServerLive(self, request: Any, context: Any) -> Any:
        self._record(context)
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        self._record(context)
        return service_pb2.ServerReadyResponse(ready=True)


@pytest.fixture
def recorder() -> Iterator[tuple[str, Recorder]]:
    servicer = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(grace=None)


otel = pytest.importorskip("opentelemetry.sdk.trace")


def test_calls_in_a_span_carry_its_trace_context(recorder: tuple[str, Recorder]) -> None:
    url, servicer = recorder
    from opentelemetry.trace import format_span_id, format_trace_id

    tracer = otel.TracerProvider().get_tracer("test")
    with InferenceClient(url) as client:
        assert client.is_server_live()  # no span: nothing sent
        with tracer.start_as_current_span("checkout") as span:
            assert client.is_server_live()
            context = span.get_span_context()
        # an explicit traceparent wins
        assert client.is_server_live(
            headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        )
    without, within, explicit = servicer.calls
    assert "traceparent" not in without
    assert within["traceparent"] == (
        f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}"
        f"-{int(context.trace_flags):02x}"
    )
    assert explicit["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def test_the_async_client_propagates_the_tasks_span(recorder: tuple[str, Recorder]) -> None:
    url, servicer = recorder
    tracer = otel.TracerProvider().get_tracer("test")

    async def run() -> set[str]:
        async with AsyncInferenceClient(url) as client:

            async def traced(name: str) -> str:
                with tracer.start_as_current_span(name) as span:
                    await client.is_server_live()
                    return format(span.get_span_context().trace_id, "032x")

            return set(await asyncio.gather(traced("a"), traced("b")))

    trace_ids = asyncio.run(run())
    sent = {call["traceparent"].split("-")[1] for call in servicer.calls}
    assert sent == trace_ids and len(sent) == 2  # each task its own trace


def test_token_and_headers_from_the_command_line_reach_the_server(
    recorder: tuple[str, Recorder],
) -> None:
    url, servicer = recorder
    result = CliRunner().invoke(
        app,
        ["health", "--url", url, "-H", "X-Team=ads", "--json"],
        env={"TDEPLOY_TOKEN": "s3cret"},
    )
    assert result.exit_code == 0, result.output
    assert servicer.calls and all(
        call["authorization"] == "Bearer s3cret" and call["x-team"] == "ads"
        for call in servicer.calls
    )


def test_nothing_is_logged_by_default_calls_at_debug_retries_at_warning(
    recorder: tuple[str, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = recorder
    library = logging.getLogger("triton_deploy.clients")
    assert any(isinstance(h, logging.NullHandler) for h in library.handlers)
    assert library.level == logging.NOTSET and library.propagate is not False
    caplog.set_level(logging.DEBUG, logger="triton_deploy.clients")
    with InferenceClient(url) as client:
        client.is_server_live()
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("server_live server ok in ")
    caplog.clear()
    down = InferenceClient("127.0.0.1:1", timeout=1, retry=RetryPolicy(max_attempts=2))
    with down, pytest.raises(Unavailable):
        down.is_server_live()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]
    first, last = (r.getMessage() for r in caplog.records)
    assert first.startswith("server_live server: attempt 1 failed (UNAVAILABLE); retrying in ")
    assert last.startswith("server_live server failed after 2 attempt(s) in ")
