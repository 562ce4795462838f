"""Deadlines and retries: what is retried, how long to wait, and when to give up.

Every call has a deadline (the client's ``timeout`` default, or ``timeout=`` per call) that
covers all of its attempts, metadata look-ups included; each attempt is sent with the time
that is left as its gRPC deadline (tritonclient's ``client_timeout``).

Only ``TransientError`` (UNAVAILABLE, RESOURCE_EXHAUSTED, Triton's queue-full and
queue-timeout rejections) is retried, with exponential backoff and full jitter, and only while
the wait still fits before the deadline. INVALID_ARGUMENT, NOT_FOUND and every other status
fail at once.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from ._errors import ClientError, DeadlineExceeded, TransientError, UsageError

__all__ = ["Deadline", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried.

    Attempt ``n`` (``n >= 1`` failures so far) waits a random time in
    ``[0, min(max_backoff_s, initial_backoff_s * multiplier ** (n - 1))]`` ("full jitter",
    so that many clients do not retry in lockstep), at most ``max_attempts`` attempts in all,
    and never past the call's deadline.

        InferenceClient(url, retry=RetryPolicy(max_attempts=10, max_backoff_s=0.5))
        InferenceClient(url, retry=RetryPolicy.none())   # fail on the first error
    """

    max_attempts: int = 5
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise UsageError(
                "RetryPolicy needs initial_backoff_s >= 0, max_backoff_s >= 0, multiplier >= 1"
            )

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries: one attempt per call."""
        return cls(max_attempts=1)

    def backoff_ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failed attempts (before jitter)."""
        exponent = max(failures - 1, 0)
        # Cap the exponent so that large attempt counts cannot overflow a float.
        return min(
            self.max_backoff_s, self.initial_backoff_s * self.multiplier ** min(exponent, 64)
        )

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """A jittered wait after ``failures`` failed attempts."""
        return (rng or random).uniform(0.0, self.backoff_ceiling(failures))

    def next_delay(
        self,
        error: ClientError,
        failures: int,
        deadline: Deadline,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None``: give up and raise ``error``."""
        if not isinstance(error, TransientError) or failures >= self.max_attempts:
            return None
        delay = self.backoff(failures, rng)
        # Leave the next attempt a little time to run, or it is bound to miss the deadline.
        if deadline.remaining() <= delay + _MIN_ATTEMPT_S:
            return None
        return delay


# Below this, an attempt cannot complete a round trip; do not start one.
_MIN_ATTEMPT_S = 0.001


class Deadline:
    """The point in time (``time.monotonic``) by which a call must be done."""

    __slots__ = ("at", "timeout")

    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise UsageError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.at = time.monotonic() + self.timeout

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def attempt_timeout(self, model: str | None = None) -> float:
        """The gRPC deadline for the next attempt; ``DeadlineExceeded`` if none is left."""
        left = self.remaining()
        if left <= _MIN_ATTEMPT_S:
            where = f" for model '{model}'" if model else ""
            raise DeadlineExceeded(
                f"the {self.timeout:g} s deadline{where} ran out before the call could be sent",
                model=model,
            )
        return left
