"""A small gRPC load generator for the serving benchmarks and tests: closed and open loop.

Requests are built once as ``ModelInferRequest`` protobufs (from the build's golden cases when
there are some, else from the model's metadata) and sent with grpc.aio on a few channels, so
one process can offer a few thousand requests per second. Every call records when it was sent,
how long it took and its outcome:

- ``ok``
- ``rejected``: the server refused it at once because it is overloaded (queue full, or its
  queue timeout expired): the fast rejection a client can retry elsewhere
- ``deadline``: the client's deadline passed first
- ``refused``: new work refused by a draining or stopped server (the model is unloading, the
  server is stopping, or nothing listens any more); never a request the server had accepted
- ``failed``: anything else, including a request that was accepted and then lost

    target = Target.from_repository(Path("model_repository"), "ctr", url)
    async with Load(url) as load:
        samples = await load.open_loop(target, rate=800, seconds=10, deadline_s=1.0)
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor, triton_to_np_dtype

__all__ = ["OUTCOMES", "Load", "Sample", "Target", "classify", "percentile"]

OUTCOMES = ("ok", "rejected", "deadline", "refused", "failed")
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def classify(code: grpc.StatusCode | None, details: str) -> str:
    """The outcome of one call from its gRPC status (see the module docstring).

    ``refused`` is kept to answers that prove the server never took the request: a model
    lookup that found no loaded version, a scheduler that was already stopping at the entry,
    or a connection that could not be opened. A connection lost mid-call is ``failed``.
    """
    if code is None or code == grpc.StatusCode.OK:
        return "ok"
    text = details or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "deadline"
    if "in ensemble" in text:  # accepted by an ensemble, then lost at a later step
        return "failed"
    if code == grpc.StatusCode.UNAVAILABLE and (
        "Exceeds maximum queue size" in text or "Request timeout expired" in text
    ):
        return "rejected"
    if code == grpc.StatusCode.NOT_FOUND and "has no available versions" in text:
        return "refused"
    if code == grpc.StatusCode.UNAVAILABLE and any(
        sign in text for sign in ("Server is stopping", "failed to connect", "Connection refused")
    ):
        return "refused"
    return "failed"


@dataclass(frozen=True)
class Sample:
    sent: float  # seconds since the load's start
    latency: float  # seconds
    outcome: str
    detail: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


@dataclass
class Target:
    """Pre-built requests for one model, sent round-robin."""

    model: str
    requests: list[service_pb2.ModelInferRequest]

    @classmethod
    def from_arrays(
        cls,
        model: str,
        inputs: dict[str, np.ndarray],
        *,
        rows_per_request: int = 1,
        limit: int = 64,
    ) -> Target:
        n = len(next(iter(inputs.values())))
        requests: list[service_pb2.ModelInferRequest] = []
        for start in range(0, max(n - rows_per_request + 1, 1), rows_per_request):
            if len(requests) >= limit:
                break
            request = service_pb2.ModelInferRequest(model_name=model)
            for name, column in inputs.items():
                value = column[start : start + rows_per_request]
                tensor = request.inputs.add()
                tensor.name = name
                tensor.datatype = np_to_triton_dtype(value.dtype)
                tensor.shape.extend(value.shape)
                if tensor.datatype == "BYTES":
                    serialized = serialize_byte_tensor(value)
                    request.raw_input_contents.append(
                        serialized.item() if serialized.size > 0 else b""
                    )
                else:
                    request.raw_input_contents.append(np.ascontiguousarray(value).tobytes())
            requests.append(request)
        return cls(model, requests)

    @classmethod
    def from_repository(
        cls, repository: Path, model: str, url: str, *, rows_per_request: int = 1
    ) -> Target:
        """Real inputs from the build's golden cases, else zeros shaped from the metadata."""
        from triton_deploy.build.golden import golden_case_path

        path = golden_case_path(repository, model)
        if path.exists():
            from triton_deploy.build.golden import GoldenCase

            return cls.from_arrays(
                model, GoldenCase.load(path).inputs, rows_per_request=rows_per_request
            )
        return cls.from_arrays(model, metadata_inputs(url, model, rows_per_request))

    def cycle(self) -> Iterator[service_pb2.ModelInferRequest]:
        return itertools.cycle(self.requests)


def metadata_inputs(url: str, model: str, rows: int) -> dict[str, np.ndarray]:
    """Zeros (empty strings for BYTES) of each input's shape, -1 dims as ``rows`` / 1."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(url) as client:
        metadata = client.get_model_metadata(model, as_json=True)
    arrays = {}
    for tensor in metadata["inputs"]:
        shape = [int(d) for d in tensor["shape"]]
        shape = [rows if i == 0 and d == -1 else max(d, 1) for i, d in enumerate(shape)]
        dtype = triton_to_np_dtype(tensor["datatype"])
        if tensor["datatype"] == "BYTES":
            arrays[tensor["name"]] = np.full(shape, b"x", dtype=object)
        else:
            arrays[tensor["name"]] = np.zeros(shape, dtype=dtype)
    return arrays


class Load:
    """gRPC channels to one server and the two ways of offering load."""

    def __init__(self, url: str, *, channels: int = 4) -> None:
        self.url = url
        self._channels = [
            grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS) for _ in range(channels)
        ]
        self._stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in self._channels]
        self._next = itertools.cycle(self._stubs)
        self.started = time.perf_counter()

    async def __aenter__(self) -> Load:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    def now(self) -> float:
        return time.perf_counter() - self.started

    async def call(self, request: Any, deadline_s: float) -> Sample:
        sent = self.now()
        began = time.perf_counter()
        try:
            await next(self._next).ModelInfer(request, timeout=deadline_s)
            outcome, detail = "ok", ""
        except grpc.aio.AioRpcError as exc:
            detail = exc.details() or ""
            outcome = classify(exc.code(), detail)
            detail = f"{exc.code().name}: {detail}"
        return Sample(sent, time.perf_counter() - began, outcome, detail[:300])

    async def closed_loop(
        self,
        targets: Sequence[Target],
        *,
        concurrency: int,
        seconds: float,
        deadline_s: float = 30.0,
        stop: asyncio.Event | None = None,
        pause_after_refusal_s: float = 0.02,
    ) -> list[Sample]:
        """``concurrency`` workers, each sending its next request when the last one returns."""
        samples: list[Sample] = []
        end = time.perf_counter() + seconds
        stop = stop or asyncio.Event()

        async def worker(k: int) -> None:
            requests = targets[k % len(targets)].cycle()
            while time.perf_counter() < end and not stop.is_set():
                sample = await self.call(next(requests), deadline_s)
                samples.append(sample)
                if sample.outcome == "refused":  # a stopped server answers at once: don't spin
                    await asyncio.sleep(pause_after_refusal_s)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return samples

    async def open_loop(
        self,
        targets: Sequence[Target],
        *,
        rate: float,
        seconds: float,
        deadline_s: float,
        seed: int = 0,
        stop: asyncio.Event | None = None,
    ) -> list[Sample]:
        """Poisson arrivals at ``rate`` per second, whatever the server does (like real users)."""
        rng = random.Random(seed)
        stop = stop or asyncio.Event()
        samples: list[Sample] = []
        pending: set[asyncio.Task[None]] = set()
        cycles = [t.cycle() for t in targets]
        start = time.perf_counter()
        due = start
        i = 0

        async def one(request: Any) -> None:
            samples.append(await self.call(request, deadline_s))

        while True:
            due += rng.expovariate(rate)
            if due - start >= seconds or stop.is_set():
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(next(cycles[i % len(cycles)])))
            i += 1
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        return samples
