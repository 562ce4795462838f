"""Throughput of this client next to raw tritonclient, same calls, same concurrency.

    python -m triton_deploy.clients.bench --url localhost:8001 --model digits --batch 8 \\
        --concurrency 8 --duration 5 --rounds 3

Each variant runs ``concurrency`` workers (threads for the sync clients, tasks for the asyncio
ones) that call the model back to back for ``duration`` seconds, after a warm-up. Both sides do
the same work per call: build the request from numpy arrays, send it, decode every output to
numpy. Ours adds validation against the cached metadata, deadlines, retries and the channel
bookkeeping. Rounds alternate raw / ours so that drift on a shared machine hits both; the table
shows the median round. The goal: at most 5 % fewer requests per second than raw tritonclient.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient

from ._async_client import AsyncInferenceClient
from ._client import InferenceClient
from ._schema import ModelSchema
from ._types import Array
from ._validation import numpy_dtype

__all__ = ["BenchResult", "main", "run_bench", "synthetic_inputs"]


@dataclass(frozen=True)
class BenchResult:
    variant: str
    requests_per_s: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def synthetic_inputs(schema: ModelSchema, batch: int, seed: int = 0) -> dict[str, Array]:
    """Valid random inputs for ``schema`` (variable dimensions get size 1)."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, Array] = {}
    for spec in schema.inputs:
        shape = [d if d > 0 else 1 for d in spec.shape]
        if schema.batched:
            shape[0] = batch
        if spec.datatype == "BYTES":
            words = np.array(["mobile", "news", "travel", "DE", "x"], dtype=object)
            arrays[spec.name] = words[rng.integers(0, len(words), size=shape)]
        elif spec.datatype == "UINT8":
            arrays[spec.name] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif spec.datatype == "BOOL":
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            arrays[spec.name] = (rng.random(size=shape) * 10).astype(numpy_dtype(spec.datatype))
    return arrays


def _raw_inputs(schema: ModelSchema, arrays: dict[str, Array]) -> list[Any]:
    inputs = []
    for spec in schema.inputs:
        array = arrays[spec.name]
        infer_input = grpcclient.InferInput(spec.name, list(array.shape), spec.datatype)
        infer_input.set_data_from_numpy(array)
        inputs.append(infer_input)
    return inputs


def _summarise(
    variant: str, latencies: list[float], elapsed: float, rows: int, errors: int
) -> BenchResult:
    ordered = sorted(latencies) or [float("nan")]
    return BenchResult(
        variant=variant,
        requests_per_s=len(latencies) / elapsed,
        rows_per_s=len(latencies) * rows / elapsed,
        p50_ms=ordered[len(ordered) // 2] * 1e3,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        errors=errors,
    )


def _threads(
    variant: str, call: Callable[[], object], concurrency: int, duration: float, rows: int
) -> BenchResult:
    for _ in range(3):  # warm-up: connection, metadata cache
        call()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        start.wait()
        mine = latencies[i]
        while True:
            began = time.perf_counter()
            if began >= stop_at[0]:
                return
            try:
                call()
            except Exception:
                errors[i] += 1
                continue
            mine.append(time.perf_counter() - began)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in workers:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + duration
    start.wait()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - began
    return _summarise(variant, [x for xs in latencies for x in xs], elapsed, rows, sum(errors))


async def _tasks(
    variant: str,
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    duration: float,
    rows: int,
) -> BenchResult:
    for _ in range(3):
        await call()
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summarise(variant, latencies, time.perf_counter() - began, rows, errors)


def _sync_side(
    side: str, url: str, model: str, arrays: dict[str, Array], concurrency: int, duration: float
) -> BenchResult:
    rows = _rows(arrays)
    if side == "ours":
        with InferenceClient(url) as ours:

            def ours_call() -> object:
                return ours.infer(model, arrays)

            return _threads("triton_deploy (sync)", ours_call, concurrency, duration, rows)
    with InferenceClient(url) as probe:
        schema = probe.model_schema(model)
    raw = grpcclient.InferenceServerClient(url)
    try:

        def raw_call() -> object:
            result = raw.infer(model, _raw_inputs(schema, arrays))
            return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

        return _threads("tritonclient (sync)", raw_call, concurrency, duration, rows)
    finally:
        raw.close()


async def _async_side(
    side: str, url: str, model: str, arrays: dict[str, Array], concurrency: int, duration: float
) -> BenchResult:
    rows = _rows(arrays)
    if side == "ours":
        async with AsyncInferenceClient(url) as ours:

            async def ours_call() -> object:
                return await ours.infer(model, arrays)

            return await _tasks("triton_deploy (asyncio)", ours_call, concurrency, duration, rows)
    async with AsyncInferenceClient(url) as probe:
        schema = await probe.model_schema(model)
    raw = aioclient.InferenceServerClient(url)
    try:

        async def raw_call() -> object:
            result = await raw.infer(model, _raw_inputs(schema, arrays))
            return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

        return await _tasks("tritonclient (asyncio)", raw_call, concurrency, duration, rows)
    finally:
        await raw.close()


def _rows(arrays: dict[str, Array]) -> int:
    return min((len(a) for a in arrays.values() if a.ndim), default=1)


def run_bench(
    url: str,
    *,
    model: str = "digits",
    batch: int = 8,
    concurrency: int = 8,
    duration: float = 5.0,
    rounds: int = 3,
    modes: Sequence[str] = ("sync", "async"),
) -> list[tuple[BenchResult, BenchResult, float]]:
    """``[(raw, ours, loss)]`` per mode: the median round of each; ``loss`` = 1 - ours/raw."""
    with InferenceClient(url) as probe:
        probe.wait_until_ready(models=[model], timeout=60)
        schema = probe.model_schema(model)
    arrays = synthetic_inputs(schema, batch)
    out = []
    for mode in modes:
        results: dict[str, list[BenchResult]] = {"raw": [], "ours": []}
        for i in range(rounds):
            # Alternate which side goes first, so that a drifting machine hits both alike.
            for side in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
                if mode == "sync":
                    result = _sync_side(side, url, model, arrays, concurrency, duration)
                else:
                    result = asyncio.run(
                        _async_side(side, url, model, arrays, concurrency, duration)
                    )
                results[side].append(result)
        raw, ours = _median(results["raw"]), _median(results["ours"])
        out.append((raw, ours, 1.0 - ours.requests_per_s / raw.requests_per_s))
    return out


def _median(results: list[BenchResult]) -> BenchResult:
    ordered = sorted(results, key=lambda r: r.requests_per_s)
    return ordered[len(ordered) // 2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m triton_deploy.clients.bench",
        description="This client's throughput next to raw tritonclient (same calls).",
    )
    parser.add_argument("--url", default="localhost:8001", help="Triton gRPC host:port")
    parser.add_argument("--model", default="digits")
    parser.add_argument("--batch", type=int, default=8, help="rows per request")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; median shown")
    parser.add_argument("--mode", choices=["sync", "async", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    modes = ["sync", "async"] if args.mode == "both" else [args.mode]
    results = run_bench(
        args.url,
        model=args.model,
        batch=args.batch,
        concurrency=args.concurrency,
        duration=args.duration,
        rounds=args.rounds,
        modes=modes,
    )
    if args.json:
        print(
            json.dumps(
                [
                    {"raw": asdict(raw), "ours": asdict(ours), "loss": loss}
                    for raw, ours, loss in results
                ]
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=(
            f"{args.model}, batch {args.batch}, concurrency {args.concurrency}, "
            f"{args.duration:g} s x {args.rounds} rounds (median) against {args.url}"
        ),
        title_justify="left",
    )
    for column in ("client", "req/s", "rows/s", "p50 ms", "p99 ms", "errors", "vs raw"):
        table.add_column(column, justify="left" if column == "client" else "right")
    for raw, ours, loss in results:
        for result, versus in ((raw, ""), (ours, f"{-loss:+.1%}")):
            table.add_row(
                result.variant,
                f"{result.requests_per_s:,.0f}",
                f"{result.rows_per_s:,.0f}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                str(result.errors),
                versus,
            )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
