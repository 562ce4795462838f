"""Threaded gRPC load for the overload and drain benchmarks and tests: closed and open loop.

The same ``Sample`` records and outcomes as the load generator (``bench.loadgen``), sent as
gRPC futures from threads. (Driving ``bench.loadgen``'s asyncio engine from a thread instead
changed how the load shedder's soft stop drains, tests/runtime/test_drain.py, so these loops
stay on gRPC futures until that is understood.)

Requests are built once as ``ModelInferRequest`` protobufs (from the build's golden cases when
there are some, else from the model's metadata) and sent as gRPC futures on a few channels
(completed on gRPC's threads, no event loop), so one process can offer a few thousand requests
per second. Every call records when it was sent,
how long it took and its outcome:

- ``ok``
- ``rejected``: the server refused it because it is overloaded (a full queue in Triton or in
  the load shedder, or a queue timeout): the answer a client can retry elsewhere
- ``deadline``: the client's deadline passed first
- ``refused``: new work refused by a draining or stopped server (the model is unloading, the
  server is stopping, or nothing listens any more); never a request the server had accepted
- ``failed``: anything else, including a request that was accepted and then lost

    target = Target.from_repository(Path("model_repository"), "ctr", url)
    with Load(url) as load:
        samples = load.open_loop([target], rate=800, seconds=10, deadline_s=1.0)
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor, triton_to_np_dtype

from triton_deploy.bench.loadgen import Sample

__all__ = ["OUTCOMES", "InBackground", "Load", "Sample", "Target", "classify", "percentile"]

OUTCOMES = ("ok", "rejected", "deadline", "refused", "failed")
# Triton's queue policy, the load shedder (runtime.shedder), HAProxy's queue timeout (503)
_OVERLOADED = (
    "Exceeds maximum queue size",
    "Request timeout expired",
    "server overloaded",
    "status: 503",
)
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
    if code == grpc.StatusCode.UNAVAILABLE and any(sign in text for sign in _OVERLOADED):
        return "rejected"  # also at a later step of an ensemble: answered, retryable
    if "in ensemble" in text:  # accepted by an ensemble, then lost at a later step
        return "failed"
    if code == grpc.StatusCode.NOT_FOUND and "has no available versions" in text:
        return "refused"
    if code == grpc.StatusCode.UNAVAILABLE and any(
        sign in text for sign in ("Server is stopping", "failed to connect", "Connection refused")
    ):
        return "refused"
    return "failed"


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
        """Inputs from ``request_inputs`` (the build's golden cases, else synthesised from the
        config); a model the repository does not hold gets zeros shaped from the server's
        metadata."""
        from triton_deploy.repository import CONFIG, request_inputs

        if (Path(repository) / model / CONFIG).is_file():
            inputs = request_inputs(repository, model, rows=64 * max(rows_per_request, 1))
            return cls.from_arrays(model, inputs.arrays, rows_per_request=rows_per_request)
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
    """gRPC channels to one server and the two ways of offering load.

    Calls are gRPC futures completed on gRPC's own threads: no event loop to saturate, so one
    Python process offers a few thousand requests per second. Both loops block; run them in
    threads (``in_background``) to combine them or to act while they run.
    """

    def __init__(self, url: str, *, channels: int = 4) -> None:
        self.url = url
        self._channels = [
            grpc.insecure_channel(url, options=_CHANNEL_OPTIONS) for _ in range(channels)
        ]
        self._stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in self._channels]
        self._next = itertools.cycle(self._stubs)
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        # (load-clock time, seconds late) of each open-loop send: a busy machine shows here
        self.lateness: list[tuple[float, float]] = []

    def __enter__(self) -> Load:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def now(self) -> float:
        return time.perf_counter() - self.started

    def _send(self, request: Any, deadline_s: float, done: Callable[[Sample], None]) -> None:
        sent = self.now()
        began = time.perf_counter()
        with self._lock:
            stub = next(self._next)
        future = stub.ModelInfer.future(request, timeout=deadline_s)

        def finished(call: Any) -> None:
            latency = time.perf_counter() - began
            try:
                call.result()
                sample = Sample(sent, latency, "ok")
            except grpc.RpcError as exc:
                detail = exc.details() or ""
                sample = Sample(
                    sent,
                    latency,
                    classify(exc.code(), detail),
                    f"{exc.code().name}: {detail}"[:300],
                )
            except grpc.FutureCancelledError:
                sample = Sample(sent, latency, "failed", "cancelled by the client")
            done(sample)

        future.add_done_callback(finished)

    def closed_loop(
        self,
        targets: Sequence[Target],
        *,
        concurrency: int,
        seconds: float,
        deadline_s: float = 30.0,
        stop: threading.Event | None = None,
        pause_after_refusal_s: float = 0.02,
    ) -> list[Sample]:
        """``concurrency`` slots, each sending its next request when the last one returns."""
        samples: list[Sample] = []
        end = time.perf_counter() + seconds
        stop = stop or threading.Event()
        active = threading.Semaphore(0)
        cycles = [t.cycle() for t in targets]

        def next_call(slot: int) -> None:
            if time.perf_counter() >= end or stop.is_set():
                active.release()
                return
            self._send(next(cycles[slot % len(cycles)]), deadline_s, lambda s: returned(slot, s))

        def returned(slot: int, sample: Sample) -> None:
            samples.append(sample)
            if sample.outcome == "refused":  # a stopped server answers at once: don't spin
                threading.Timer(pause_after_refusal_s, next_call, (slot,)).start()
            else:
                next_call(slot)

        for slot in range(concurrency):
            next_call(slot)
        for _ in range(concurrency):
            active.acquire()
        return samples

    def open_loop(
        self,
        targets: Sequence[Target],
        *,
        rate: float,
        seconds: float,
        deadline_s: float,
        seed: int = 0,
        stop: threading.Event | None = None,
    ) -> list[Sample]:
        """Poisson arrivals at ``rate`` per second, whatever the server does (like real users)."""
        rng = random.Random(seed)
        samples: list[Sample] = []
        stop = stop or threading.Event()
        cycles = [t.cycle() for t in targets]
        pending = 0
        all_back = threading.Condition()

        def returned(sample: Sample) -> None:
            nonlocal pending
            samples.append(sample)
            with all_back:
                pending -= 1
                all_back.notify_all()

        start = time.perf_counter()
        due = start
        i = 0
        while True:
            due += rng.expovariate(rate)
            if due - start >= seconds or stop.is_set():
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.lateness.append((self.now(), max(time.perf_counter() - due, 0.0)))
            with all_back:
                pending += 1
            self._send(next(cycles[i % len(cycles)]), deadline_s, returned)
            i += 1
        with all_back:
            all_back.wait_for(lambda: pending == 0, timeout=deadline_s + 30)
        return samples


class InBackground:
    """A load loop on a thread: ``result()`` waits for it and returns its samples."""

    def __init__(self, loop: Callable[..., list[Sample]], **kwargs: Any) -> None:
        self._samples: list[Sample] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(loop, kwargs), daemon=True)
        self._thread.start()

    def _run(self, loop: Callable[..., list[Sample]], kwargs: dict[str, Any]) -> None:
        try:
            self._samples = loop(**kwargs)
        except BaseException as exc:  # re-raised in result()
            self._error = exc

    def result(self, timeout_s: float | None = None) -> list[Sample]:
        self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error
        return self._samples
