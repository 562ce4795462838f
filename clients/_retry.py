"""Deadlines, retries and the retry budget: what is retried, how long to wait, when to give up.

Every call has a deadline (the client's ``timeout`` default, or ``timeout=`` per call) that
covers all of its attempts, metadata look-ups included; each attempt is sent with the time
that is left as its gRPC deadline (tritonclient's ``client_timeout``).

Only ``TransientError`` (UNAVAILABLE, RESOURCE_EXHAUSTED, Triton's queue-full and
queue-timeout rejections) is retried, with exponential backoff and full jitter, while the wait
still fits before the deadline and the client's ``RetryBudget`` has a token to spend.
INVALID_ARGUMENT, NOT_FOUND, TLS failures and every other status fail at once.

The budget is what keeps retries from multiplying the load on a server that is already down
or overloaded: a token bucket as in gRPC's retry throttling (gRFC A6). Every retry spends a
token; every call the server answers puts ``token_ratio`` back, so retries stay a bounded share
of the traffic; a slow steady refill (``refill_per_s``) lets a lone caller keep retrying while
its deadline allows. One budget is shared by every call of a client (pass the same
``RetryBudget`` to several clients to share it wider).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import ClientError, DeadlineExceeded, TransientError, UsageError

__all__ = ["Deadline", "RetryBudget", "RetryPolicy"]


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise UsageError(f"{name} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried.

    Attempt ``n`` (``n >= 1`` failures so far) waits a random time in
    ``[0, min(max_backoff_s, initial_backoff_s * multiplier ** (n - 1))]`` ("full jitter",
    so that many clients do not retry in lockstep), never past the call's deadline, and at
    most ``max_attempts`` attempts in all (``None``: as many as the deadline and the client's
    ``RetryBudget`` allow).

        InferenceClient(url, retry=RetryPolicy(max_attempts=10, max_backoff_s=0.5))
        InferenceClient(url, retry=RetryPolicy.none())   # fail on the first error
    """

    max_attempts: int | None = None
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if attempts is not None and (
            isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1
        ):
            raise UsageError(
                f"RetryPolicy.max_attempts must be an integer >= 1 or None, got {attempts!r}"
            )
        initial = _number(self.initial_backoff_s, "RetryPolicy.initial_backoff_s")
        longest = _number(self.max_backoff_s, "RetryPolicy.max_backoff_s")
        multiplier = _number(self.multiplier, "RetryPolicy.multiplier")
        # A zero backoff turns an outage into a tight loop of attempts (and connections).
        if not _MIN_BACKOFF_S <= initial <= longest or not math.isfinite(longest):
            raise UsageError(
                f"RetryPolicy needs {_MIN_BACKOFF_S:g} <= initial_backoff_s <= max_backoff_s "
                f"(finite seconds), got initial_backoff_s={self.initial_backoff_s!r}, "
                f"max_backoff_s={self.max_backoff_s!r}"
            )
        if not 1 <= multiplier <= 100:
            raise UsageError(f"RetryPolicy.multiplier must be in [1, 100], got {multiplier!r}")

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
        """Seconds to wait before the next attempt, or ``None``: give up and raise ``error``.

        (The budget is asked separately, by the client: only for a retry this allows.)
        """
        if not isinstance(error, TransientError):
            return None
        if self.max_attempts is not None and failures >= self.max_attempts:
            return None
        delay = self.backoff(failures, rng)
        # Leave the next attempt a little time to run, or it is bound to miss the deadline.
        if deadline.remaining() <= delay + _MIN_ATTEMPT_S:
            return None
        return delay


class RetryBudget:
    """A token bucket that bounds retries across all the calls of a client (or several).

    - starts full, with ``max_tokens`` tokens: a burst of that many retries is allowed;
    - each retry spends one token; without a token the call fails with its last error;
    - each call the server answered (success, or a non-transient error) adds ``token_ratio``:
      in steady state retries stay below that share of the answered calls;
    - ``refill_per_s`` tokens come back every second regardless, so a single caller keeps
      retrying (at that pace) while its deadline allows, and an outage costs the server at
      most ``max_tokens`` + ``refill_per_s`` x its length in retries, whatever the number of
      calls waiting.

        budget = RetryBudget(max_tokens=20)
        a = InferenceClient(url_a, retry_budget=budget)   # shared by both clients
        b = InferenceClient(url_b, retry_budget=budget)
        InferenceClient(url, retry_budget=RetryBudget.unlimited())   # no budget

    Thread-safe; usable from asyncio too (it never blocks).
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_tokens",
        "_updated",
        "max_tokens",
        "refill_per_s",
        "token_ratio",
    )

    def __init__(
        self,
        max_tokens: float = 10.0,
        token_ratio: float = 0.1,
        refill_per_s: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_tokens = _number(max_tokens, "RetryBudget.max_tokens")
        self.token_ratio = _number(token_ratio, "RetryBudget.token_ratio")
        self.refill_per_s = _number(refill_per_s, "RetryBudget.refill_per_s")
        if not self.max_tokens >= 1:
            raise UsageError(f"RetryBudget.max_tokens must be >= 1, got {max_tokens!r}")
        if not 0 <= self.token_ratio <= 1:
            raise UsageError(f"RetryBudget.token_ratio must be in [0, 1], got {token_ratio!r}")
        if not self.refill_per_s >= 0:
            raise UsageError(f"RetryBudget.refill_per_s must be >= 0, got {refill_per_s!r}")
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.max_tokens
        self._updated = clock()

    @classmethod
    def unlimited(cls) -> RetryBudget:
        """A budget that never runs out (retries are bounded by the policy and deadline only)."""
        return cls(max_tokens=math.inf)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(max_tokens={self.max_tokens:g}, token_ratio={self.token_ratio:g}, "
            f"refill_per_s={self.refill_per_s:g}, tokens={self.tokens:.3g})"
        )

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens

    def try_spend(self) -> bool:
        """Take a token for one retry; False when none is left."""
        with self._lock:
            self._refill()
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def record_answer(self) -> None:
        """The server answered a call (it is up): put ``token_ratio`` back."""
        if self.token_ratio:
            with self._lock:
                self._tokens = min(self.max_tokens, self._tokens + self.token_ratio)

    def _refill(self) -> None:
        now = self._clock()
        if self.refill_per_s and now > self._updated:
            self._tokens = min(
                self.max_tokens, self._tokens + (now - self._updated) * self.refill_per_s
            )
        self._updated = now


# The shortest initial backoff a policy may have.
_MIN_BACKOFF_S = 0.001
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

    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.monotonic() - (self.at - self.timeout)

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
