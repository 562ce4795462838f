"""Connections against real tritonservers: blue/green channel recycling behind an L4 proxy,
GOAWAY from the server's max connection age, retries across a restart, TLS and headers."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from clienttools import TcpProxy, digit_images

from triton_deploy.clients import (
    AsyncInferenceClient,
    ClientError,
    InferenceClient,
    PermissionDenied,
    RetryBudget,
    RetryPolicy,
    TlsError,
    Unavailable,
)
from triton_deploy.runtime.server import TritonServer, free_port

pytestmark = pytest.mark.server


class Load:
    """Threads calling ``digits`` back to back; collects failures."""

    def __init__(self, client: InferenceClient, threads: int = 4) -> None:
        self.client = client
        self.stop = threading.Event()
        self.done: list[float] = []
        self.failures: list[ClientError] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        images = digit_images(2)
        while not self.stop.is_set():
            try:
                self.client.infer("digits", IMAGES=images)
                self.done.append(time.monotonic())
            except ClientError as error:
                self.failures.append(error)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def wait_for_calls(self, n: int, after: float, timeout: float = 60.0) -> None:
        limit = time.monotonic() + timeout
        while sum(t > after for t in list(self.done)) < n:
            assert time.monotonic() < limit, f"fewer than {n} calls completed; {self.failures[:3]}"
            time.sleep(0.02)


def _watch_green(proxy: TcpProxy, seconds: float) -> float | None:
    """Seconds after now at which the green color first carried request bytes."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if proxy.bytes_up("green") > 0:
            return time.monotonic() - started
        time.sleep(0.01)
    return None


# -- blue/green behind an L4 proxy ---------------------------------------------------------------
def test_without_recycling_traffic_stays_on_blue(proxy: TcpProxy) -> None:
    """The control experiment: the proxy reproduces a Service's sticky connections."""
    with InferenceClient(proxy.url, max_connection_age_s=None) as client, Load(client) as load:
        load.wait_for_calls(5, after=0)
        proxy.switch("green")
        assert _watch_green(proxy, 2.0) is None
        assert not load.failures


def test_blue_green_switch_reaches_green_within_max_age(proxy: TcpProxy) -> None:
    age = 1.0
    with InferenceClient(proxy.url, max_connection_age_s=age) as client, Load(client) as load:
        load.wait_for_calls(5, after=0)
        proxy.switch("green")
        # (The control experiment above shows that without recycling green gets nothing.)
        reached = _watch_green(proxy, age + 30.0)
        assert reached is not None, "no call reached green after the switch"
        time.sleep(0.3)  # calls that were in flight on blue finish there
        blue = proxy.bytes_up("blue")
        load.wait_for_calls(20, after=time.monotonic())
        assert proxy.bytes_up("blue") == blue  # nothing new reaches blue
        assert not load.failures
    assert {c.color for c in proxy.open_now()} <= {"green"}  # blue connections were closed
    assert client.channels_opened >= 2


def test_recycling_never_fails_in_flight_calls(proxy: TcpProxy) -> None:
    with InferenceClient(proxy.url, max_connection_age_s=0.3, timeout=20) as client:
        client.model_schema("digits")  # first connection (blue), metadata cached
        [blue] = proxy.open_now()
        proxy.delay_s = 1.0  # every answer now takes a second
        finished: dict[str, float] = {}
        outputs: dict[str, dict[str, np.ndarray]] = {}

        def slow_call() -> None:
            outputs["slow"] = client.infer("digits", IMAGES=digit_images(2))
            finished["slow"] = time.monotonic()

        thread = threading.Thread(target=slow_call)
        thread.start()
        time.sleep(0.5)  # in flight on a channel that is now older than its max age
        proxy.switch("green")
        client.infer("digits", IMAGES=digit_images(1))  # recycles: a new channel, via green
        thread.join(timeout=30)
    assert "slow" in outputs and outputs["slow"]["LABELS"].shape == (2, 3)
    assert proxy.opened() == {"blue": 1, "green": 1}
    assert blue.closed is not None and blue.closed >= finished["slow"] - 0.05  # not before


def test_async_recycling_never_fails_in_flight_calls(proxy: TcpProxy) -> None:
    async def run() -> None:
        async with AsyncInferenceClient(proxy.url, max_connection_age_s=0.3, timeout=20) as c:
            await c.model_schema("digits")
            [blue] = proxy.open_now()
            proxy.delay_s = 1.0
            finished: dict[str, float] = {}

            async def slow_call() -> dict[str, np.ndarray]:
                out = await c.infer("digits", IMAGES=digit_images(2))
                finished["slow"] = time.monotonic()
                return out

            slow = asyncio.ensure_future(slow_call())
            await asyncio.sleep(0.5)
            proxy.switch("green")
            await c.infer("digits", IMAGES=digit_images(1))
            out = await slow
            assert out["LABELS"].shape == (2, 3)
            assert proxy.opened() == {"blue": 1, "green": 1}
            await asyncio.sleep(0.2)
            assert blue.closed is not None and blue.closed >= finished["slow"] - 0.05
            assert c.channels_opened == 2

    asyncio.run(run())


# -- servers of our own ----------------------------------------------------------------------------
def _server_on(repository: Path, ports: tuple[int, int, int]) -> TritonServer:
    grpc_port, http_port, metrics_port = ports
    return TritonServer(
        repository, grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port
    ).start()


def test_server_goaway_moves_traffic_without_failures(model_repository: Path) -> None:
    """Triton's --grpc-max-connection-age sends GOAWAY; gRPC reconnects under the client."""
    args = ["--grpc-max-connection-age=700", "--grpc-max-connection-age-grace=5000"]
    with TritonServer(model_repository, extra_args=args) as server:
        tcp = TcpProxy({"blue": ("127.0.0.1", server.grpc_port)}, active="blue")
        try:
            with (
                InferenceClient(tcp.url, max_connection_age_s=None) as client,
                Load(client) as load,
            ):
                load.wait_for_calls(5, after=0)
                time.sleep(2.5)
                assert not load.failures
            assert sum(tcp.opened().values()) >= 3  # the server cycled the connection
        finally:
            tcp.close()


def test_retry_across_a_server_restart(model_repository: Path) -> None:
    ports = (free_port(), free_port(), free_port())
    server = _server_on(model_repository, ports)
    url = server.grpc_url
    patient = RetryPolicy(max_attempts=10_000, initial_backoff_s=0.05, max_backoff_s=0.5)
    unlimited = RetryBudget.unlimited()  # this test is about riding out the restart
    try:
        with (
            InferenceClient(url, timeout=120, retry=patient, retry_budget=unlimited) as client,
            Load(client, 2) as load,
        ):
            load.wait_for_calls(5, after=0)
            server.stop()
            down_at = time.monotonic()
            impatient = InferenceClient(url, retry=RetryPolicy.none())
            with impatient, pytest.raises(Unavailable):
                impatient.infer("digits", IMAGES=digit_images(1))
            time.sleep(1.0)  # calls keep retrying meanwhile
            server = _server_on(model_repository, ports)  # same ports: a restart
            up_at = time.monotonic()
            load.wait_for_calls(10, after=up_at)
            # calls that started while the server was down completed after the restart
            assert any(down_at < t for t in load.done)
        assert load.failures == [], load.failures[:3]
        # The broken connection was replaced once; the retries then shared the new channel
        # (gRPC reconnected it when the server came back) instead of one channel per attempt.
        assert client.channels_opened == 2
    finally:
        server.stop()


def test_mutual_tls_headers_and_compression(
    model_repository: Path, tls_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="triton_deploy.clients")
    args = [
        "--grpc-use-ssl-mutual=true",
        f"--grpc-server-cert={tls_files['server_crt']}",
        f"--grpc-server-key={tls_files['server_key']}",
        f"--grpc-root-cert={tls_files['ca_crt']}",
        "--grpc-restricted-protocol=inference:tdeploy-key=s3cret",
    ]
    with TritonServer(model_repository, extra_args=args) as server:
        tls = {
            "root_certificates": tls_files["ca_crt"],
            "private_key": tls_files["client_key"],
            "certificate_chain": tls_files["client_crt"],
        }
        images = digit_images(3)
        with InferenceClient(server.grpc_url, **tls) as client:
            assert client.is_server_ready()  # health is not restricted
            with pytest.raises(PermissionDenied) as info:
                client.infer("digits", IMAGES=images)
            assert "tdeploy-key" in str(info.value) and "headers=" in str(info.value)
        expected_header = _expected_header(str(info.value))
        with InferenceClient(server.grpc_url, headers={expected_header: "s3cret"}, **tls) as client:
            out = client.infer("digits", IMAGES=images)
            gz = client.infer("digits", IMAGES=images, compression="gzip")
            np.testing.assert_array_equal(out["LABELS"], gz["LABELS"])
        with InferenceClient(server.grpc_url, compression="deflate", **tls) as client:
            deflated = client.infer("digits", IMAGES=images, headers={expected_header: "s3cret"})
            np.testing.assert_array_equal(out["LABELS"], deflated["LABELS"])
        # without TLS the server cannot be reached; the error says why it may be
        plain = InferenceClient(server.grpc_url, timeout=2, retry=RetryPolicy.none())
        with plain, pytest.raises(Unavailable, match="ssl=True / --tls"):
            plain.is_server_live()
        # a CA that did not sign the server's certificate: a TLS error, at once, not retried
        wrong_ca = {**tls, "root_certificates": tls_files["other_ca_crt"]}
        with InferenceClient(server.grpc_url, timeout=10, **wrong_ca) as client:
            with pytest.raises(TlsError, match="CERTIFICATE_VERIFY_FAILED") as info:
                client.is_server_live()
            assert "root_certificates (--ca)" in str(info.value)
        assert "failed after 1 attempt(s)" in caplog.records[-1].getMessage()  # not retried


def test_tls_to_a_plain_port_is_a_tls_error(grpc_url: str, tls_files: dict[str, Path]) -> None:
    with InferenceClient(grpc_url, timeout=10, root_certificates=tls_files["ca_crt"]) as client:
        with pytest.raises(TlsError, match="WRONG_VERSION_NUMBER"):
            client.is_server_live()
        assert client.channels_opened == 1


def _expected_header(message: str) -> str:
    # "This protocol is restricted, expecting header 'triton-grpc-protocol-tdeploy-key'"
    start = message.index("expecting header '") + len("expecting header '")
    return message[start : message.index("'", start)]
