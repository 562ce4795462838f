"""The load generator against a fake transport with fixed latencies, in virtual time.

The event loop below advances its clock by whatever a sleep asks for instead of waiting, so a
10 ms answer takes exactly 10 ms of loop time however busy the machine is: what the generator
counts (window cut-off, warm-up excluded, throughput, percentiles) is checked exactly.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from triton_deploy.bench.loadgen import (
    LoadResult,
    Sample,
    blocking_closed_loop,
    closed_loop,
    open_loop,
)


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: a select with a timeout moves the loop's virtual clock forward instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if not events and timeout is not None and timeout > 0:
            self.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(selector=self._virtual)

    def time(self) -> float:
        return self._virtual.now


class FakeTransport:
    """Answers after ``latencies[i % len]`` seconds of loop time (i = the request's number);
    payloads named "fail" raise."""

    def __init__(self, latencies: Sequence[float]) -> None:
        self.latencies = list(latencies)
        self.sent = 0
        self.opened = self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def send(self, payload: Any, *, timeout_s: float | None = None) -> None:
        latency = self.latencies[self.sent % len(self.latencies)]
        self.sent += 1
        await asyncio.sleep(latency)
        if payload == "fail":
            raise RuntimeError("HTTP 500: boom")

    async def close(self) -> None:
        self.closed = True


def test_fixed_latency_closed_loop_is_counted_exactly() -> None:
    # 4 slots, 10 ms each: answers at 10, 20, 30 ... ms per slot. Warm-up 105 ms, window 1 s:
    # answers at 110 ... 1100 ms (100 per slot) fall inside.
    transport = FakeTransport([0.010])
    result = closed_loop(
        transport,
        ["x"],
        concurrency=4,
        seconds=1.0,
        warmup_s=0.105,
        loop_factory=VirtualTimeLoop,
    )
    assert transport.opened and transport.closed
    assert result.wall_s == pytest.approx(1.0)
    assert result.throughput == pytest.approx(400.0)
    # latencies: sent at or after 105 ms (first at 110 ms) and answered by 1105 ms
    assert result.requests == 4 * 99
    assert result.percentile(50) == pytest.approx(10.0)
    assert result.percentile(99) == pytest.approx(10.0)
    assert result.errors == 0


def test_answers_after_the_window_are_not_counted() -> None:
    # 300 ms answers, one slot: sent at 0, 300, 600, 900, 1200 ms. Window [100, 1100) ms:
    # answers at 300, 600, 900 count; the one sent at 900 ms answers at 1200 ms, after the
    # window: not in the throughput and not in the latencies (the old generator kept it).
    result = closed_loop(
        FakeTransport([0.3]),
        ["x"],
        concurrency=1,
        seconds=1.0,
        warmup_s=0.1,
        loop_factory=VirtualTimeLoop,
    )
    assert result.throughput == pytest.approx(3.0)
    # sent in the window and answered in it: those sent at 300 and 600 ms
    assert result.requests == 2


def test_warm_up_requests_are_excluded_from_latencies() -> None:
    # The first request (sent during the warm-up) is slow: 500 ms, then 10 ms each. It is
    # answered inside the window (at 500 ms), so it counts as completed work, but its latency
    # was measured from a send in the warm-up and is left out.
    result = closed_loop(
        FakeTransport([0.5] + [0.01] * 10_000),
        ["x"],
        concurrency=1,
        seconds=1.0,
        warmup_s=0.2,
        loop_factory=VirtualTimeLoop,
    )
    assert max(result.latencies_ms) == pytest.approx(10.0)
    # answers at 500, 510, ... 1190 ms inside [200, 1200): 1 + 69
    assert result.throughput == pytest.approx(70.0)


def test_percentiles_are_exact() -> None:
    # One slot, latencies 1, 2, ... 100 ms: one cycle takes 5.05 s. A warm-up of one whole
    # cycle and a window of one cycle (+ 10 us) hold exactly the second cycle.
    cycle = [k / 1000 for k in range(1, 101)]
    result = closed_loop(
        FakeTransport(cycle),
        ["x"],
        concurrency=1,
        seconds=5.05 + 1e-5,
        warmup_s=5.05 - 1e-6,
        loop_factory=VirtualTimeLoop,
    )
    assert sorted(result.latencies_ms) == pytest.approx([float(k) for k in range(1, 101)])
    expected = np.arange(1, 101, dtype=float)
    for q in (50, 90, 95, 99):
        assert result.percentile(q) == pytest.approx(float(np.percentile(expected, q)))
    assert result.percentile(50) == pytest.approx(50.5)
    assert result.percentile(99) == pytest.approx(99.01)


def test_errors_are_counted_apart_from_latencies() -> None:
    result = closed_loop(
        FakeTransport([0.01]),
        ["x", "fail"],
        concurrency=2,
        seconds=1.0,
        warmup_s=0.105,
        loop_factory=VirtualTimeLoop,
    )
    # slot 0 always sends "x", slot 1 always "fail" (payloads k, k + 2, ...)
    assert result.throughput == pytest.approx(100.0)
    assert result.errors == 99 and result.requests == 99
    assert result.first_error is not None and "HTTP 500" in result.first_error


def test_open_loop_offers_the_rate_and_counts_from_the_schedule() -> None:
    result = open_loop(
        FakeTransport([0.002]),
        ["x"],
        rate=500.0,
        seconds=20.0,
        warmup_s=1.0,
        loop_factory=VirtualTimeLoop,
    )
    assert result.offered_rate == 500.0
    assert result.throughput == pytest.approx(500.0, rel=0.05)  # Poisson: ~10,000 arrivals
    # nothing queues in a fake transport: every latency is the 2 ms answer (the generator is
    # never late in virtual time)
    assert result.percentile(99) == pytest.approx(2.0)


def test_window_accounting_from_samples() -> None:
    samples = [
        Sample(sent=0.5, latency=1.0, outcome="ok"),  # sent in warm-up, answered in: completed
        Sample(sent=1.0, latency=0.2, outcome="ok"),  # inside: counted
        Sample(sent=1.5, latency=0.1, outcome="rejected", detail="full"),  # an error inside
        Sample(sent=2.9, latency=0.2, outcome="ok"),  # answered after the window: not counted
    ]
    result = LoadResult.from_samples(samples, start=1.0, end=3.0)
    assert result.completed == 2 and result.throughput == pytest.approx(1.0)
    assert result.latencies_ms == pytest.approx([200.0])
    assert result.errors == 1 and result.first_error == "full"


def test_blocking_clients_get_the_same_window() -> None:
    import time

    result = blocking_closed_loop(
        lambda: time.sleep(0.01), concurrency=2, seconds=0.3, warmup_s=0.05
    )
    assert result.wall_s == pytest.approx(0.3)
    assert 0 < result.throughput <= 2 / 0.01 * 1.05
    assert min(result.latencies_ms) >= 10.0
