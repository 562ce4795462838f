"""Our load generator: asyncio, closed loop (N requests in flight) or open loop (Poisson).

Requests are encoded once beforehand (``payloads``): gRPC calls send pre-serialised
``ModelInferRequest`` bytes through a raw gRPC method (no protobuf work per call), HTTP calls
post pre-encoded JSON bodies through aiohttp. Every run records its own CPU use (user +
system time of this process over wall time), so a generator that saturates a core, and
therefore measures itself instead of the server, is visible in every result.

Latency in the open loop counts from the *scheduled* arrival, as MLPerf's LoadGen does: a
server that falls behind shows it in the latency, not in a slower arrival rate.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "GENERATOR_SATURATED",
    "GrpcTransport",
    "HttpTransport",
    "LoadResult",
    "Transport",
    "closed_loop",
    "open_loop",
]

#: Cores of its own CPU above which a load generator measures itself more than the server.
GENERATOR_SATURATED = 0.9
_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class LoadResult:
    """One measured run: per-request latencies, errors, wall time and the generator's CPU."""

    latencies_ms: list[float] = field(repr=False)
    errors: int
    wall_s: float
    client_cpu: float  # cores used by the load generator (1.0 = one core busy)
    samples_per_request: int = 1
    first_error: str | None = None
    offered_rate: float | None = None  # open loop: requests/s asked for

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def samples_per_s(self) -> float:
        return self.throughput * self.samples_per_request

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    @property
    def generator_saturated(self) -> bool:
        return self.client_cpu >= GENERATOR_SATURATED


class Transport(Protocol):
    """One way to send a pre-encoded request and wait for its answer."""

    async def open(self) -> None: ...
    async def send(self, payload: bytes) -> None: ...
    async def close(self) -> None: ...


class GrpcTransport:
    """KServe V2 / Triton gRPC ``ModelInfer`` with pre-serialised requests.

    Works against any server of the V2 protocol (Triton, MLServer). Channels are spread so
    that no more than 16 calls share one HTTP/2 connection.
    """

    def __init__(self, url: str, *, channels: int = 1, timeout_s: float = 30.0) -> None:
        self.url = url
        self.channels = max(1, channels)
        self.timeout_s = timeout_s
        self._channels: list = []
        self._calls: list[Callable[..., Awaitable[bytes]]] = []
        self._next = 0

    async def open(self) -> None:
        import grpc

        options = [("grpc.max_receive_message_length", 1 << 30)]
        for _ in range(self.channels):
            channel = grpc.aio.insecure_channel(self.url, options=options)
            self._channels.append(channel)
            self._calls.append(channel.unary_unary(_MODEL_INFER))

    async def send(self, payload: bytes) -> None:
        call = self._calls[self._next % len(self._calls)]
        self._next += 1
        await call(payload, timeout=self.timeout_s)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


class HttpTransport:
    """POST of a pre-encoded JSON body; any status other than 200 is an error."""

    def __init__(self, url: str, *, limit: int = 256, timeout_s: float = 30.0) -> None:
        self.url = url
        self.limit = limit
        self.timeout_s = timeout_s
        self._session: Any = None

    async def open(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limit),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"content-type": "application/json"},
        )

    async def send(self, payload: bytes) -> None:
        assert self._session is not None
        async with self._session.post(self.url, data=payload) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _closed(
    transport: Transport,
    payloads: Sequence[bytes],
    concurrency: int,
    seconds: float,
    warmup_s: float,
) -> tuple[list[float], int, str | None, float, float]:
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    recording = False
    stop_at = time.perf_counter() + warmup_s + seconds

    async def worker(k: int) -> None:
        nonlocal errors, first_error
        i = k
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            try:
                await transport.send(payloads[i % len(payloads)])
                if recording:
                    latencies.append((time.perf_counter() - began) * 1e3)
            except Exception as exc:  # counted; the run goes on
                if recording:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"[:500]
            i += concurrency

    async def clock() -> tuple[float, float]:
        nonlocal recording
        await asyncio.sleep(warmup_s)
        recording = True
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        return _cpu_seconds() - cpu0, time.perf_counter() - wall0

    workers = [asyncio.create_task(worker(k)) for k in range(concurrency)]
    cpu, wall = await clock()
    await asyncio.gather(*workers)
    return latencies, errors, first_error, cpu, wall


def closed_loop(
    transport: Transport,
    payloads: Sequence[bytes],
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 0.5,
    samples_per_request: int = 1,
) -> LoadResult:
    """``concurrency`` requests in flight back to back for ``seconds`` (after a warm-up).

    Requests answered after the window closes are not counted, so the throughput is what the
    server completed inside the window.
    """

    async def run() -> LoadResult:
        await transport.open()
        try:
            latencies, errors, first, cpu, wall = await _closed(
                transport, payloads, concurrency, seconds, warmup_s
            )
        finally:
            await transport.close()
        return LoadResult(latencies, errors, wall, cpu / wall, samples_per_request, first)

    return asyncio.run(run())


def open_loop(
    transport: Transport,
    payloads: Sequence[bytes],
    *,
    rate: float,
    seconds: float,
    warmup_s: float = 0.5,
    seed: int = 0,
    max_outstanding: int = 4096,
    samples_per_request: int = 1,
) -> LoadResult:
    """Poisson arrivals at ``rate`` requests/s (MLPerf's Server scenario).

    Latency counts from each request's scheduled arrival. More than ``max_outstanding``
    unanswered requests count the excess as errors (the server has fallen behind for good).
    """

    async def run() -> LoadResult:
        rng = random.Random(seed)
        latencies: list[float] = []
        errors = 0
        first: str | None = None
        outstanding = 0
        tasks: set[asyncio.Task[None]] = set()

        async def one(payload: bytes, scheduled: float, record: bool) -> None:
            nonlocal errors, first, outstanding
            try:
                await transport.send(payload)
                if record:
                    latencies.append((time.perf_counter() - scheduled) * 1e3)
            except Exception as exc:
                if record:
                    errors += 1
                    first = first or f"{type(exc).__name__}: {exc}"[:500]
            finally:
                outstanding -= 1

        await transport.open()
        try:
            start = time.perf_counter()
            measure_from, stop_at = start + warmup_s, start + warmup_s + seconds
            cpu0 = wall0 = None
            next_at, i = start, 0
            while next_at < stop_at:
                now = time.perf_counter()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                record = next_at >= measure_from
                if record and cpu0 is None:
                    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
                if outstanding >= max_outstanding:
                    errors += int(record)
                    first = first or f"more than {max_outstanding} requests outstanding"
                else:
                    outstanding += 1
                    task = asyncio.create_task(one(payloads[i % len(payloads)], next_at, record))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                i += 1
                next_at += rng.expovariate(rate)
            wall = time.perf_counter() - (wall0 or start)
            cpu = _cpu_seconds() - (cpu0 or _cpu_seconds())
            if tasks:
                await asyncio.wait(tasks, timeout=30)
        finally:
            await transport.close()
        return LoadResult(
            latencies, errors, wall, cpu / wall, samples_per_request, first, offered_rate=rate
        )

    return asyncio.run(run())
