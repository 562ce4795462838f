"""Load shapes: how many simulated users run at each moment of a test.

Each shape answers ``tick(run_time_s)`` with ``(user_count, spawn_rate)``, or ``None`` when
the test is over, as locust's ``LoadTestShape.tick()`` does; ``plugin.LoadShape`` adapts them.
They are plain dataclasses so that their sequences can be checked without running locust.

- ``constant``: ramp up to ``-u`` users at ``-r`` per second and hold them (locust's default);
- ``step``: ``--ramp-steps`` equal steps up to ``-u`` users over ``-t``;
- ``spike``: a baseline of ``--spike-baseline`` x ``-u`` users, all ``-u`` users at once for the
  middle fifth of ``-t`` (from 40 % to 60 % of the run), then back to the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from .config import LoadTestConfigError

__all__ = ["SHAPES", "ConstantLoad", "Shape", "Spike", "StepRamp", "make_shape"]

Tick = tuple[int, float]


class Shape(Protocol):
    def tick(self, run_time_s: float) -> Tick | None: ...


@dataclass(frozen=True)
class ConstantLoad:
    """``users`` users (started at ``spawn_rate`` per second) until ``duration_s``
    (``None``: until stopped)."""

    users: int
    spawn_rate: float
    duration_s: float | None = None

    def tick(self, run_time_s: float) -> Tick | None:
        if self.duration_s is not None and run_time_s >= self.duration_s:
            return None
        return self.users, self.spawn_rate


@dataclass(frozen=True)
class StepRamp:
    """``steps`` equal steps up to ``users`` over ``duration_s``; each step adds
    ``users / steps`` users (rounded up) at ``spawn_rate`` per second."""

    users: int
    steps: int
    duration_s: float
    spawn_rate: float

    def users_at_step(self, step: int) -> int:
        return math.ceil(self.users * (step + 1) / self.steps)

    def tick(self, run_time_s: float) -> Tick | None:
        if run_time_s >= self.duration_s:
            return None
        step = min(int(run_time_s // (self.duration_s / self.steps)), self.steps - 1)
        return self.users_at_step(step), self.spawn_rate


@dataclass(frozen=True)
class Spike:
    """``baseline`` users; at ``start_s`` all ``users`` arrive within a second and stay for
    ``length_s``; then back to ``baseline`` (stopped within a second) until ``duration_s``."""

    users: int
    baseline: int
    duration_s: float
    spawn_rate: float
    start_s: float
    length_s: float

    def tick(self, run_time_s: float) -> Tick | None:
        if run_time_s >= self.duration_s:
            return None
        sudden = float(max(self.users, self.spawn_rate))
        if self.start_s <= run_time_s < self.start_s + self.length_s:
            return self.users, sudden
        if run_time_s < self.start_s:
            return self.baseline, self.spawn_rate
        return self.baseline, sudden


SHAPES = ("constant", "step", "spike")
# The spike covers this part of the run: from 40 % to 60 % of --run-time.
SPIKE_START, SPIKE_LENGTH = 0.4, 0.2


def make_shape(
    name: str,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: float | None,
    steps: int = 4,
    spike_baseline: float = 0.25,
) -> Shape:
    """The shape ``name`` from locust's -u, -r, -t and our --ramp-steps, --spike-baseline."""
    if name not in SHAPES:
        raise LoadTestConfigError(f"--load-shape must be one of {', '.join(SHAPES)}, got {name!r}")
    if users < 1:
        raise LoadTestConfigError(f"--users must be >= 1, got {users}")
    if not spawn_rate > 0:
        raise LoadTestConfigError(f"--spawn-rate must be > 0, got {spawn_rate}")
    if run_time_s is not None and not run_time_s > 0:
        raise LoadTestConfigError(f"--run-time must be > 0, got {run_time_s}")
    if name == "constant":
        return ConstantLoad(users, spawn_rate, run_time_s)
    if run_time_s is None:
        raise LoadTestConfigError(f"--load-shape {name} needs --run-time (e.g. -t 60s)")
    if name == "step":
        if not 1 <= steps <= users:
            raise LoadTestConfigError(
                f"--ramp-steps must be between 1 and --users ({users}), got {steps}"
            )
        return StepRamp(users, steps, run_time_s, spawn_rate)
    if not 0 < spike_baseline < 1:
        raise LoadTestConfigError(
            f"--spike-baseline must be a fraction of --users between 0 and 1, got {spike_baseline}"
        )
    baseline = max(1, round(users * spike_baseline))
    return Spike(
        users,
        baseline,
        run_time_s,
        spawn_rate,
        start_s=run_time_s * SPIKE_START,
        length_s=run_time_s * SPIKE_LENGTH,
    )
