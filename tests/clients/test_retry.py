"""Backoff math, the retry decision and the retry budget; and what retries cost a server that
is down (no tritonserver needed: nothing listens, or a proxy to nothing)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from clienttools import TcpProxy

from triton_deploy.clients import (
    AsyncInferenceClient,
    DeadlineExceeded,
    InferenceClient,
    InvalidInput,
    ModelNotFound,
    RetryBudget,
    RetryPolicy,
    ServerOverloaded,
    Unavailable,
    UsageError,
)
from triton_deploy.clients._retry import Deadline
from triton_deploy.runtime.server import free_port


def test_backoff_ceiling_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=1.0)
    assert [policy.backoff_ceiling(n) for n in range(1, 7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert policy.backoff_ceiling(10_000) == 1.0  # no overflow


def test_backoff_is_full_jitter_within_the_ceiling() -> None:
    policy = RetryPolicy(initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=1.0)
    rng = random.Random(7)
    samples = [policy.backoff(3, rng) for _ in range(2000)]
    assert min(samples) >= 0.0 and max(samples) <= 0.4
    # spread over the whole range, not a constant: jitter is real
    assert min(samples) < 0.05 and max(samples) > 0.35
    assert abs(sum(samples) / len(samples) - 0.2) < 0.02


def test_only_transient_errors_are_retried() -> None:
    policy = RetryPolicy(max_attempts=5)
    deadline = Deadline(10.0)
    assert policy.next_delay(Unavailable("down"), 1, deadline) is not None
    assert policy.next_delay(ServerOverloaded("queue full"), 1, deadline) is not None
    for error in (InvalidInput("bad"), ModelNotFound("gone"), DeadlineExceeded("late")):
        assert policy.next_delay(error, 1, deadline) is None


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    deadline = Deadline(10.0)
    assert policy.next_delay(Unavailable("down"), 2, deadline) is not None
    assert policy.next_delay(Unavailable("down"), 3, deadline) is None
    assert RetryPolicy.none().next_delay(Unavailable("down"), 1, deadline) is None


def test_no_retry_past_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=100, initial_backoff_s=0.5, max_backoff_s=0.5)
    deadline = Deadline(0.05)

    class Longest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert policy.next_delay(Unavailable("down"), 1, deadline, Longest()) is None


def test_deadline_runs_out() -> None:
    deadline = Deadline(0.02)
    assert 0 < deadline.attempt_timeout() <= 0.02
    time.sleep(0.03)
    with pytest.raises(DeadlineExceeded, match=r"0\.02 s deadline for model 'digits'"):
        deadline.attempt_timeout("digits")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"multiplier": 0.5},
        {"initial_backoff_s": -1},
        {"initial_backoff_s": 0},  # accepted before: 574 attempts in 2 s against a down server
        {"initial_backoff_s": 2.0, "max_backoff_s": 1.0},
        {"max_backoff_s": float("inf")},
        {"initial_backoff_s": "fast"},
    ],
    ids=repr,
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)


def test_by_default_retries_are_bounded_by_the_deadline_not_a_count() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts is None
    assert policy.next_delay(Unavailable("down"), 50, Deadline(100.0)) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_budget_is_a_token_bucket() -> None:
    clock = Clock()
    budget = RetryBudget(max_tokens=3, token_ratio=0.5, refill_per_s=1.0, clock=clock)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]  # the burst
    budget.record_answer()  # +0.5
    assert not budget.try_spend()
    budget.record_answer()  # +0.5: one whole token
    assert budget.try_spend() and not budget.try_spend()
    clock.now += 2.0  # +2 tokens over two seconds
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    clock.now += 100.0  # never more than max_tokens
    assert budget.tokens == 3
    unlimited = RetryBudget.unlimited()
    assert all(unlimited.try_spend() for _ in range(10_000))


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 0}, {"token_ratio": 2}, {"refill_per_s": -1}, {"max_tokens": "x"}]
)
def test_budget_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryBudget(**kwargs)


def failed_attempts(caplog: pytest.LogCaptureFixture) -> int:
    """Each failed attempt logs one WARNING (a retry, or the final failure)."""
    return sum(
        1
        for r in caplog.records
        if r.name == "triton_deploy.clients" and r.levelno == logging.WARNING
    )


IMAGES = np.zeros((1, 8, 8), np.uint8)


def test_a_lone_call_retries_while_its_deadline_allows(caplog: pytest.LogCaptureFixture) -> None:
    """It gave up after 5 attempts (~0.4 s) although its 2 s deadline had time left; and each
    attempt opened a new connection."""
    caplog.set_level(logging.WARNING, logger="triton_deploy.clients")
    proxy = TcpProxy({"down": ("127.0.0.1", free_port())}, active="down")  # to nothing
    try:
        with InferenceClient(proxy.url, timeout=2.0) as client:
            started = time.monotonic()
            with pytest.raises(Unavailable) as info:
                client.is_server_live()
            elapsed = time.monotonic() - started
            # It stops only when the next backoff (at most max_backoff_s = 1 s) would pass the
            # deadline: more than 1 s after the start.
            assert elapsed > 2.0 - 1.0, elapsed
            assert failed_attempts(caplog) >= 5
            assert not info.value.retry_budget_spent
            assert client.channels_opened == 1  # one channel for every attempt
        # gRPC reconnects that one channel with its own backoff (0.1 s doubling, at most 2 s)
        assert len(proxy.connections) <= 8, len(proxy.connections)
    finally:
        proxy.close()
    assert "failed after" in caplog.records[-1].getMessage()


def test_a_backoff_that_wakes_up_past_the_deadline_fails_with_the_attempts_error(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy machine a backoff that fit before the deadline ended after it: the call raised
    DeadlineExceeded("ran out before the call could be sent") after sending it 5 times. It fails
    as when the backoff would not have fit: with the last attempt's error, logged as given up.
    Here every sleep oversleeps by 1 s (sync client) or the event loop wakes up 1 s late."""
    caplog.set_level(logging.WARNING, logger="triton_deploy.clients")
    real_sleep, real_async_sleep = time.sleep, asyncio.sleep
    monkeypatch.setattr(time, "sleep", lambda s: real_sleep(s + 1.0))

    async def late(delay: float) -> None:
        await real_async_sleep(delay + 1.0)

    proxy = TcpProxy({"down": ("127.0.0.1", free_port())}, active="down")  # to nothing
    try:
        with InferenceClient(proxy.url, timeout=0.5) as client, pytest.raises(Unavailable):
            client.is_server_live()
        assert "failed after 1 attempt(s)" in caplog.records[-1].getMessage()

        async def call() -> None:
            async with AsyncInferenceClient(proxy.url, timeout=0.5) as client:
                monkeypatch.setattr(asyncio, "sleep", late)
                try:
                    await client.is_server_live()
                finally:
                    monkeypatch.setattr(asyncio, "sleep", real_async_sleep)

        with pytest.raises(Unavailable):
            asyncio.run(call())
        assert "failed after 1 attempt(s)" in caplog.records[-1].getMessage()
    finally:
        monkeypatch.setattr(time, "sleep", real_sleep)
        proxy.close()


def test_the_budget_bounds_retries_of_many_concurrent_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 concurrent calls against a server that is down made 250 attempts over 82 new
    connections; the budget now allows its burst plus its steady refill, whatever the number
    of calls, and the calls share one channel."""
    caplog.set_level(logging.WARNING, logger="triton_deploy.clients")
    budget = RetryBudget(max_tokens=10, token_ratio=0.1, refill_per_s=2.0)
    proxy = TcpProxy({"down": ("127.0.0.1", free_port())}, active="down")
    try:
        with InferenceClient(proxy.url, timeout=2.0, retry_budget=budget) as client:
            started = time.monotonic()
            with ThreadPoolExecutor(50) as pool:
                futures = [pool.submit(client.is_server_live) for _ in range(50)]
                errors = [f.exception() for f in futures]
            elapsed = time.monotonic() - started
            assert all(isinstance(e, Unavailable) for e in errors), errors[:3]
            retries = failed_attempts(caplog) - 50
            assert 10 <= retries <= 10 + 2.0 * elapsed + 1, (retries, elapsed)
            assert sum(bool(getattr(e, "retry_budget_spent", False)) for e in errors) >= 30
            assert "retry budget is spent" in str(next(e for e in errors if e.retry_budget_spent))
            assert client.channels_opened == 1
        assert len(proxy.connections) <= 8, len(proxy.connections)
    finally:
        proxy.close()


def test_async_twin_shares_the_budget(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="triton_deploy.clients")
    budget = RetryBudget(max_tokens=4, token_ratio=0.1, refill_per_s=0.0)

    async def run() -> list[BaseException]:
        url = f"127.0.0.1:{free_port()}"
        async with AsyncInferenceClient(url, timeout=1.0, retry_budget=budget) as client:
            results = await asyncio.gather(
                *(client.is_server_live() for _ in range(20)), return_exceptions=True
            )
            assert client.channels_opened == 1
        return [r for r in results if isinstance(r, BaseException)]

    errors = asyncio.run(run())
    assert len(errors) == 20 and all(isinstance(e, Unavailable) for e in errors)
    assert failed_attempts(caplog) == 20 + 4  # the burst of 4 retries, nothing more


def test_timeout_must_be_positive() -> None:
    with pytest.raises(UsageError):
        Deadline(0)
