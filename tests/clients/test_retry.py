"""Backoff math and the retry decision, without a server."""

from __future__ import annotations

import random
import time

import pytest

from triton_deploy.clients import (
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    RetryPolicy,
    ServerOverloaded,
    Unavailable,
    UsageError,
)
from triton_deploy.clients._retry import Deadline


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
    "kwargs", [{"max_attempts": 0}, {"multiplier": 0.5}, {"initial_backoff_s": -1}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(UsageError):
        Deadline(0)
