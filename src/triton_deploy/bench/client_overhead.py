"""The client library's cost: its throughput next to raw tritonclient, same calls, same concurrency.

    tdeploy bench --client-overhead --url localhost:8001 --model MODEL [--batch 8]
    tdeploy bench client-overhead --url localhost:8001 --model MODEL --overhead

Each variant runs ``concurrency`` workers (threads for the sync clients, tasks for the asyncio
ones) that call the model back to back for ``duration`` seconds, after a warm-up. Both sides do
the same work per call: build the request from numpy arrays, send it, decode every output to
numpy. Ours adds validation against the cached metadata, a deadline on every call, retries and
the channel bookkeeping. Each round measures both sides back to back (alternating which goes
first) with the clients kept open; the loss is the median of the per-round ratios, which
cancels the slow drift of a shared machine. The goal: at most 5 % below raw tritonclient.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient

from triton_deploy.bench.loadgen import (
    CallTransport,
    LoadResult,
    blocking_closed_loop,
    measure_closed,
)
from triton_deploy.clients._async_client import AsyncInferenceClient
from triton_deploy.clients._base import DEFAULT_TIMEOUT_S
from triton_deploy.clients._client import InferenceClient
from triton_deploy.clients._schema import ModelSchema
from triton_deploy.clients._types import Array
from triton_deploy.clients._validation import numpy_dtype

__all__ = [
    "BenchResult",
    "Comparison",
    "main",
    "measure_overhead",
    "run_bench",
    "synthetic_inputs",
]


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


def _summarise(variant: str, result: LoadResult, rows: int) -> BenchResult:
    return BenchResult(
        variant=variant,
        requests_per_s=result.throughput,
        rows_per_s=result.throughput * rows,
        p50_ms=result.percentile(50),
        p99_ms=result.percentile(99),
        errors=result.errors,
    )


def _threads(
    variant: str, call: Callable[[], object], concurrency: int, duration: float, rows: int
) -> BenchResult:
    """The sync client: one thread per slot (the load generator's blocking loop)."""
    for _ in range(3):  # warm-up: connection, metadata cache
        call()
    result = blocking_closed_loop(call, concurrency=concurrency, seconds=duration, warmup_s=0.2)
    return _summarise(variant, result, rows)


async def _tasks(
    variant: str,
    call: Callable[[], Awaitable[object]],
    concurrency: int,
    duration: float,
    rows: int,
) -> BenchResult:
    """The asyncio client: tasks on the running loop (the load generator's closed loop)."""
    for _ in range(3):
        await call()
    result = await measure_closed(
        CallTransport(lambda _payload: call()),
        [None],
        concurrency=concurrency,
        seconds=duration,
        warmup_s=0.2,
    )
    return _summarise(variant, result, rows)


@dataclass(frozen=True)
class Comparison:
    """One mode's outcome: the median round of each side, and the paired ratios."""

    mode: str
    raw: BenchResult
    ours: BenchResult
    ratios: tuple[float, ...]  # ours / raw req/s, one per round (measured back to back)

    @property
    def loss(self) -> float:
        """1 - median(ours / raw): the share of raw throughput this client gives up."""
        return 1.0 - statistics.median(self.ratios)


def _sync_rounds(
    url: str, model: str, arrays: dict[str, Array], concurrency: int, duration: float, rounds: int
) -> tuple[list[BenchResult], list[BenchResult]]:
    rows = _rows(arrays)
    with InferenceClient(url) as ours:
        schema = ours.model_schema(model)
        raw = grpcclient.InferenceServerClient(url)
        try:

            def ours_call() -> object:
                return ours.infer(model, arrays)

            def raw_call() -> object:
                # The same call: with a deadline, as every call of ours has one.
                result = raw.infer(
                    model, _raw_inputs(schema, arrays), client_timeout=DEFAULT_TIMEOUT_S
                )
                return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

            sides = {
                "raw": lambda: _threads(
                    "tritonclient (sync)", raw_call, concurrency, duration, rows
                ),
                "ours": lambda: _threads(
                    "triton_deploy (sync)", ours_call, concurrency, duration, rows
                ),
            }
            return _alternate(sides, rounds)
        finally:
            raw.close()


async def _async_rounds(
    url: str, model: str, arrays: dict[str, Array], concurrency: int, duration: float, rounds: int
) -> tuple[list[BenchResult], list[BenchResult]]:
    rows = _rows(arrays)
    async with AsyncInferenceClient(url) as ours:
        schema = await ours.model_schema(model)
        raw = aioclient.InferenceServerClient(url)
        try:

            async def ours_call() -> object:
                return await ours.infer(model, arrays)

            async def raw_call() -> object:
                result = await raw.infer(
                    model, _raw_inputs(schema, arrays), client_timeout=DEFAULT_TIMEOUT_S
                )
                return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

            raws: list[BenchResult] = []
            ourses: list[BenchResult] = []
            for i in range(rounds):
                for side in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
                    if side == "raw":
                        raws.append(
                            await _tasks(
                                "tritonclient (asyncio)", raw_call, concurrency, duration, rows
                            )
                        )
                    else:
                        ourses.append(
                            await _tasks(
                                "triton_deploy (asyncio)", ours_call, concurrency, duration, rows
                            )
                        )
            return raws, ourses
        finally:
            await raw.close()


def _alternate(
    sides: dict[str, Callable[[], BenchResult]], rounds: int
) -> tuple[list[BenchResult], list[BenchResult]]:
    results: dict[str, list[BenchResult]] = {"raw": [], "ours": []}
    for i in range(rounds):
        # Alternate which side goes first, so that a drifting machine hits both alike.
        for side in ("raw", "ours") if i % 2 == 0 else ("ours", "raw"):
            results[side].append(sides[side]())
    return results["raw"], results["ours"]


def _rows(arrays: dict[str, Array]) -> int:
    return min((len(a) for a in arrays.values() if a.ndim), default=1)


def run_bench(
    url: str,
    *,
    model: str,
    batch: int = 8,
    concurrency: int = 8,
    duration: float = 2.0,
    rounds: int = 8,
    modes: Sequence[str] = ("sync", "async"),
) -> list[Comparison]:
    """Raw tritonclient and this client, back to back, ``rounds`` times per mode.

    On a shared machine throughput drifts by more than the difference being measured, so each
    round's pair is compared (``ours / raw``) and the median ratio is reported.
    """
    with InferenceClient(url) as probe:
        probe.wait_until_ready(models=[model], timeout=60)
        schema = probe.model_schema(model)
    arrays = synthetic_inputs(schema, batch)
    out = []
    for mode in modes:
        if mode == "sync":
            raws, ours = _sync_rounds(url, model, arrays, concurrency, duration, rounds)
        else:
            raws, ours = asyncio.run(
                _async_rounds(url, model, arrays, concurrency, duration, rounds)
            )
        ratios = tuple(o.requests_per_s / r.requests_per_s for r, o in zip(raws, ours, strict=True))
        out.append(Comparison(mode, _median(raws), _median(ours), ratios))
    return out


def _median(results: list[BenchResult]) -> BenchResult:
    ordered = sorted(results, key=lambda r: r.requests_per_s)
    return ordered[len(ordered) // 2]


def measure_overhead(
    url: str, *, model: str, batch: int = 8, calls: int = 2000, rounds: int = 5
) -> dict[str, float]:
    """Client-side cost per call in microseconds, transport excluded.

    One real response is recorded, then both paths run against a stub transport that returns
    it at once: raw = build the InferInputs + decode the outputs (what any tritonclient
    caller does); ours = the whole ``infer`` (validation, deadline, channel bookkeeping,
    retry loop, decoding). Best of ``rounds``: a machine's noise only ever adds time.
    """
    with InferenceClient(url, max_connection_age_s=None) as ours:
        schema = ours.model_schema(model)
        arrays = synthetic_inputs(schema, batch)
        ours.infer(model, arrays)
        with grpcclient.InferenceServerClient(url) as raw:
            recorded = raw.infer(model, _raw_inputs(schema, arrays))
        channel = ours._channels.book.current
        assert channel is not None
        real = channel.client
        channel.client = _StubTransport(recorded)

        def raw_call() -> object:
            result = channel.client.infer(model, _raw_inputs(schema, arrays), client_timeout=1.0)
            return {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}

        def ours_call() -> object:
            return ours.infer(model, arrays)

        best = {"raw": float("inf"), "ours": float("inf")}
        try:
            for _ in range(rounds):
                for side, call in (("raw", raw_call), ("ours", ours_call)):
                    began = time.perf_counter()
                    for _ in range(calls):
                        call()
                    best[side] = min(best[side], (time.perf_counter() - began) / calls * 1e6)
        finally:
            channel.client = real
    return best


class _StubTransport:
    """Stands in for tritonclient's client: answers every infer with one recorded result."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def infer(self, *args: Any, **kwargs: Any) -> Any:
        return self.result

    def close(self) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdeploy bench client-overhead",
        description="This client's throughput next to raw tritonclient (same calls).",
    )
    parser.add_argument("--url", default="localhost:8001", help="Triton gRPC host:port")
    parser.add_argument("--model", required=True, help="any model the server serves")
    parser.add_argument("--batch", type=int, default=8, help="rows per request")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per side and round")
    parser.add_argument("--rounds", type=int, default=8, help="back-to-back rounds per mode")
    parser.add_argument("--mode", choices=["sync", "async", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="measure the client-side cost per call instead (stub transport, no noise "
        "from the server)",
    )
    args = parser.parse_args(argv)
    if args.overhead:
        best = measure_overhead(args.url, model=args.model, batch=args.batch)
        extra = best["ours"] - best["raw"]
        line = {"model": args.model, "batch": args.batch, **best, "extra_us": extra}
        print(
            json.dumps(line)
            if args.json
            else f"{args.model}, batch {args.batch}: client-side cost per call, transport "
            f"excluded: tritonclient {best['raw']:.1f} us, triton_deploy {best['ours']:.1f} us "
            f"(+{extra:.1f} us)"
        )
        return 0
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
                    {
                        "mode": c.mode,
                        "raw": asdict(c.raw),
                        "ours": asdict(c.ours),
                        "ratios": list(c.ratios),
                        "loss": c.loss,
                    }
                    for c in results
                ]
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=(
            f"{args.model}, batch {args.batch}, concurrency {args.concurrency}, "
            f"{args.rounds} rounds of {args.duration:g} s per side against {args.url}"
        ),
        title_justify="left",
        caption="req/s, rows/s, latencies: the median round; vs raw: the median of the "
        "per-round ratios (min..max)",
    )
    for column in ("client", "req/s", "rows/s", "p50 ms", "p99 ms", "errors", "vs raw"):
        table.add_column(column, justify="left" if column == "client" else "right")
    for c in results:
        spread = f"{min(c.ratios) - 1:+.0%}..{max(c.ratios) - 1:+.0%}"
        for result, versus in ((c.raw, ""), (c.ours, f"{-c.loss:+.1%} ({spread})")):
            table.add_row(
                result.variant,
                f"{result.requests_per_s:,.0f}",
                f"{result.rows_per_s:,.0f}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                str(result.errors),
                versus,
            )
    Console(width=max(Console().width, 110)).print(table)
    return 0
