"""The load generator: asyncio, closed loop (N requests in flight) or open loop (Poisson).

The engine behind ``tdeploy bench``, ``tdeploy tune``, ``tdeploy bench analyzer``, the tracing
and client overhead benchmarks; ``bench.load.Load`` (overload, drain) records the same
``Sample`` with the same outcomes from gRPC futures on threads. Requests are encoded once
beforehand (``payloads``): gRPC calls send pre-serialised ``ModelInferRequest`` bytes through a
raw gRPC method (no protobuf work per call), HTTP calls post pre-encoded bodies through
aiohttp, ``CallTransport`` awaits any coroutine (a client library's ``infer``).

What a run counts (``LoadResult.from_samples``), with the window ``[start, end)`` that follows
the warm-up:

- **throughput**: answers that arrived inside the window, whatever their send time, over the
  window's length: what the server completed in it (perf_analyzer counts the same way);
- **latencies and errors**: requests sent inside the window and answered (or failed) inside it:
  nothing sent during the warm-up, nothing answered after the window closed.

Every run records its own CPU use (user + system time of this process over wall time), so a
generator that saturates a core, and therefore measures itself instead of the server, shows in
every result. The clock is the event loop's (``loop.time()``), so a test can run the whole
engine in virtual time against a fake transport.

Latency in the open loop counts from the *scheduled* arrival, as MLPerf's LoadGen does: a
server that falls behind shows it in the latency, not in a slower arrival rate.
"""

from __future__ import annotations

import asyncio
import random
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "GENERATOR_SATURATED",
    "CallTransport",
    "GrpcTransport",
    "HttpTransport",
    "LoadResult",
    "Sample",
    "Transport",
    "blocking_closed_loop",
    "closed_loop",
    "closed_samples",
    "measure_closed",
    "open_loop",
    "open_samples",
]

#: Cores of its own CPU above which a load generator measures itself more than the server.
GENERATOR_SATURATED = 0.9
_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Sample:
    """One request: when it was sent (seconds from the load's origin), how long its answer
    took from that send, its outcome (``bench.load.OUTCOMES``) and how late the generator sent
    it against its schedule (open loop; 0 in the closed loop)."""

    sent: float
    latency: float  # seconds
    outcome: str
    detail: str = ""
    late: float = 0.0

    @property
    def done(self) -> float:
        return self.sent + self.latency


@dataclass
class LoadResult:
    """One measured window: latencies, errors, the answers it completed and the CPU it took."""

    latencies_ms: list[float] = field(repr=False)
    errors: int
    wall_s: float
    client_cpu: float  # cores used by the load generator (1.0 = one core busy)
    samples_per_request: int = 1
    first_error: str | None = None
    offered_rate: float | None = None  # open loop: requests/s asked for
    completed: int | None = None  # successful answers inside the window (None: len(latencies))

    @classmethod
    def from_samples(
        cls,
        samples: Sequence[Sample],
        *,
        start: float,
        end: float,
        client_cpu: float = 0.0,
        samples_per_request: int = 1,
        offered_rate: float | None = None,
        from_schedule: bool = False,
    ) -> LoadResult:
        """The window ``[start, end)`` of a run (see the module docstring for what counts).

        ``from_schedule``: latencies count from each request's scheduled arrival (open loop).
        """
        latencies: list[float] = []
        errors = 0
        first: str | None = None
        completed = 0
        for s in samples:
            answered_inside = start <= s.done < end
            if s.outcome == "ok" and answered_inside:
                completed += 1
            if not (start <= s.sent and answered_inside):
                continue
            if s.outcome == "ok":
                latencies.append((s.latency + (s.late if from_schedule else 0.0)) * 1e3)
            else:
                errors += 1
                first = first or s.detail or s.outcome
        return cls(
            latencies,
            errors,
            end - start,
            client_cpu,
            samples_per_request,
            first,
            offered_rate,
            completed,
        )

    @property
    def requests(self) -> int:
        """Successful requests sent and answered inside the window (the latency sample)."""
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        """Successful answers per second inside the window."""
        done = self.requests if self.completed is None else self.completed
        return done / self.wall_s if self.wall_s > 0 else 0.0

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
    async def send(self, payload: Any, *, timeout_s: float | None = None) -> None: ...
    async def close(self) -> None: ...


def _outcome(exc: BaseException) -> tuple[str, str]:
    """The outcome of a failed call (``bench.load.classify`` for gRPC status codes)."""
    import grpc

    from triton_deploy.bench.load import classify

    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        name = code.name if code is not None else "UNKNOWN"
        return classify(code, details), f"{name}: {details}"[:300]
    if isinstance(exc, asyncio.TimeoutError):
        return "deadline", "the client's deadline passed"
    text = f"{type(exc).__name__}: {exc}"[:300]
    if "HTTP 503" in text or "HTTP 429" in text:
        return "rejected", text
    return "failed", text


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

        options = [
            ("grpc.max_receive_message_length", 1 << 30),
            ("grpc.max_send_message_length", 1 << 30),
        ]
        for _ in range(self.channels):
            channel = grpc.aio.insecure_channel(self.url, options=options)
            self._channels.append(channel)
            self._calls.append(channel.unary_unary(_MODEL_INFER))

    async def send(self, payload: bytes, *, timeout_s: float | None = None) -> None:
        call = self._calls[self._next % len(self._calls)]
        self._next += 1
        await call(payload, timeout=timeout_s or self.timeout_s)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        self._calls.clear()


class HttpTransport:
    """POST of a pre-encoded body (JSON by default); any status other than 200 is an error."""

    def __init__(
        self,
        url: str,
        *,
        limit: int = 256,
        timeout_s: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.limit = limit
        self.timeout_s = timeout_s
        self.headers = headers or {"content-type": "application/json"}
        self._session: Any = None

    async def open(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limit),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers=self.headers,
        )

    async def send(self, payload: bytes, *, timeout_s: float | None = None) -> None:
        assert self._session is not None
        extra: dict[str, Any] = {}
        if timeout_s is not None:
            import aiohttp

            extra["timeout"] = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(self.url, data=payload, **extra) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class CallTransport:
    """Awaits ``call(payload)``: any asyncio client (e.g. a client library's ``infer``)."""

    def __init__(self, call: Callable[[Any], Awaitable[object]]) -> None:
        self.call = call

    async def open(self) -> None:
        return None

    async def send(self, payload: Any, *, timeout_s: float | None = None) -> None:
        if timeout_s is None:
            await self.call(payload)
        else:
            await asyncio.wait_for(self.call(payload), timeout_s)

    async def close(self) -> None:
        return None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the engine ----------------------------------------------------------------------------------
async def closed_samples(
    transport: Transport,
    payloads: Sequence[Any],
    *,
    concurrency: int,
    until: float,
    origin: float = 0.0,
    stop: Callable[[], bool] | None = None,
    timeout_s: float | None = None,
    pause_after_refusal_s: float = 0.02,
) -> list[Sample]:
    """``concurrency`` slots on an open transport, each sending its next request when the last
    one returns, until loop time ``until`` (or ``stop()``); every request's ``Sample``.

    Slot ``k`` sends payloads ``k, k + concurrency, ...`` (round robin over the list). A
    ``refused`` answer (a stopped server answers at once) pauses its slot briefly: no spinning.
    """
    loop = asyncio.get_running_loop()
    samples: list[Sample] = []
    stopped = stop or (lambda: False)

    async def slot(k: int) -> None:
        i = k
        while True:
            began = loop.time()
            if began >= until or stopped():
                return
            try:
                await transport.send(payloads[i % len(payloads)], timeout_s=timeout_s)
                outcome, detail = "ok", ""
            except Exception as exc:  # counted; the run goes on
                outcome, detail = _outcome(exc)
            samples.append(Sample(began - origin, loop.time() - began, outcome, detail))
            if outcome == "refused":
                await asyncio.sleep(pause_after_refusal_s)
            i += concurrency

    await asyncio.gather(*(slot(k) for k in range(concurrency)))
    return samples


async def open_samples(
    transport: Transport,
    payloads: Sequence[Any],
    *,
    rate: float,
    until: float,
    origin: float = 0.0,
    seed: int = 0,
    stop: Callable[[], bool] | None = None,
    timeout_s: float | None = None,
    max_outstanding: int = 4096,
    lateness: list[tuple[float, float]] | None = None,
    drain_s: float = 30.0,
) -> list[Sample]:
    """Poisson arrivals at ``rate`` per second until loop time ``until`` (or ``stop()``),
    whatever the server does (like real users); every request's ``Sample``.

    More than ``max_outstanding`` unanswered requests count the excess as ``failed`` (the
    server has fallen behind for good). ``lateness`` collects (sent, seconds late) per send.
    """
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    samples: list[Sample] = []
    outstanding = 0
    tasks: set[asyncio.Task[None]] = set()
    stopped = stop or (lambda: False)

    async def one(payload: Any, began: float, late: float) -> None:
        nonlocal outstanding
        try:
            await transport.send(payload, timeout_s=timeout_s)
            outcome, detail = "ok", ""
        except Exception as exc:
            outcome, detail = _outcome(exc)
        finally:
            outstanding -= 1
        samples.append(Sample(began - origin, loop.time() - began, outcome, detail, late))

    due, i = loop.time(), 0
    while True:
        due += rng.expovariate(rate)
        if due >= until or stopped():
            break
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
        began = loop.time()
        late = max(began - due, 0.0)
        if lateness is not None:
            lateness.append((began - origin, late))
        if outstanding >= max_outstanding:
            detail = f"more than {max_outstanding} requests outstanding"
            samples.append(Sample(began - origin, 0.0, "failed", detail, late))
        else:
            outstanding += 1
            task = asyncio.create_task(one(payloads[i % len(payloads)], began, late))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(set(tasks), timeout=drain_s)
    return samples


def _run(coroutine: Awaitable[LoadResult], loop_factory: Callable[[], Any] | None) -> LoadResult:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]


async def _windowed(
    transport: Transport,
    warmup_s: float,
    seconds: float,
    send: Callable[[float], Awaitable[list[Sample]]],
) -> tuple[list[Sample], float, float, float]:
    """Open the transport, run ``send(until=end)`` over ``warmup_s`` then a window of
    ``seconds``, close it: (samples, window start, window end, client CPU share in the window)."""
    loop = asyncio.get_running_loop()
    await transport.open()
    try:
        start = loop.time() + warmup_s
        end = start + seconds
        cpu: list[float] = []

        async def meter() -> None:
            await asyncio.sleep(max(0.0, start - loop.time()))
            cpu.append(_cpu_seconds())
            await asyncio.sleep(max(0.0, end - loop.time()))
            cpu.append(_cpu_seconds())

        clock = asyncio.create_task(meter())
        samples = await send(end)
        await clock
    finally:
        await transport.close()
    return samples, start, end, (cpu[1] - cpu[0]) / seconds if seconds > 0 else 0.0


async def measure_closed(
    transport: Transport,
    payloads: Sequence[Any],
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 0.5,
    samples_per_request: int = 1,
) -> LoadResult:
    """``closed_loop`` inside a running event loop (the transport is opened and closed here)."""
    samples, start, end, client_cpu = await _windowed(
        transport,
        warmup_s,
        seconds,
        lambda until: closed_samples(transport, payloads, concurrency=concurrency, until=until),
    )
    return LoadResult.from_samples(
        samples,
        start=start,
        end=end,
        client_cpu=client_cpu,
        samples_per_request=samples_per_request,
    )


def closed_loop(
    transport: Transport,
    payloads: Sequence[Any],
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 0.5,
    samples_per_request: int = 1,
    loop_factory: Callable[[], Any] | None = None,
) -> LoadResult:
    """``concurrency`` requests in flight back to back: ``warmup_s``, then a window of
    ``seconds`` (see the module docstring for what counts). Requests still in flight when the
    window closes are awaited (the server is not left with cancelled calls), not counted."""
    return _run(
        measure_closed(
            transport,
            payloads,
            concurrency=concurrency,
            seconds=seconds,
            warmup_s=warmup_s,
            samples_per_request=samples_per_request,
        ),
        loop_factory,
    )


def open_loop(
    transport: Transport,
    payloads: Sequence[Any],
    *,
    rate: float,
    seconds: float,
    warmup_s: float = 0.5,
    seed: int = 0,
    max_outstanding: int = 4096,
    samples_per_request: int = 1,
    loop_factory: Callable[[], Any] | None = None,
) -> LoadResult:
    """Poisson arrivals at ``rate`` requests/s (MLPerf's Server scenario): ``warmup_s``, then a
    window of ``seconds``. Latency counts from each request's scheduled arrival."""

    async def run() -> LoadResult:
        # arrivals stop with the window; answers are awaited (and counted) only until it
        # closes plus a grace for the stragglers, which then count as not answered in time
        samples, start, end, client_cpu = await _windowed(
            transport,
            warmup_s,
            seconds,
            lambda until: open_samples(
                transport,
                payloads,
                rate=rate,
                until=until,
                seed=seed,
                max_outstanding=max_outstanding,
            ),
        )
        # An open-loop request sent in the window counts even if answered after it: the
        # window is about the offered load, and a late answer is a slow one, not a lost one.
        late_end = max([end, *(s.done for s in samples)])
        result = LoadResult.from_samples(
            [s for s in samples if s.sent >= start and s.sent < end],
            start=start,
            end=late_end + 1e-9,
            client_cpu=client_cpu,
            samples_per_request=samples_per_request,
            offered_rate=rate,
            from_schedule=True,
        )
        result.wall_s = seconds
        result.completed = result.requests
        return result

    return _run(run(), loop_factory)


def blocking_closed_loop(
    call: Callable[[], object],
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 0.5,
    samples_per_request: int = 1,
) -> LoadResult:
    """The closed loop for a blocking client (a sync library's ``infer``): one thread per
    slot, the same window and the same counting as ``closed_loop``."""
    origin = time.monotonic()
    start = origin + warmup_s
    end = start + seconds
    lists: list[list[Sample]] = [[] for _ in range(concurrency)]
    cpu: list[float] = []

    def slot(k: int) -> None:
        mine = lists[k]
        while True:
            began = time.monotonic()
            if began >= end:
                return
            try:
                call()
                outcome, detail = "ok", ""
            except Exception as exc:  # counted; the run goes on
                outcome, detail = _outcome(exc)
            mine.append(Sample(began, time.monotonic() - began, outcome, detail))

    threads = [threading.Thread(target=slot, args=(k,), daemon=True) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start - time.monotonic()))
    cpu.append(_cpu_seconds())
    time.sleep(max(0.0, end - time.monotonic()))
    cpu.append(_cpu_seconds())
    for thread in threads:
        thread.join()
    return LoadResult.from_samples(
        [s for samples in lists for s in samples],
        start=start,
        end=end,
        client_cpu=(cpu[1] - cpu[0]) / seconds if seconds > 0 else 0.0,
        samples_per_request=samples_per_request,
    )
