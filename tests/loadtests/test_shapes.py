"""Load shapes: the (users, spawn rate) sequence each one asks locust for, second by second."""

from __future__ import annotations

import pytest

from triton_deploy.loadtests import ConstantLoad, LoadTestConfigError, Spike, StepRamp, make_shape


def ticks(shape: object, seconds: int) -> list[tuple[int, float] | None]:
    return [shape.tick(float(t)) for t in range(seconds)]  # type: ignore[attr-defined]


def test_constant_holds_then_stops() -> None:
    shape = make_shape("constant", users=16, spawn_rate=8, run_time_s=5)
    assert shape == ConstantLoad(16, 8, 5)
    assert ticks(shape, 7) == [(16, 8)] * 5 + [None, None]


def test_constant_without_run_time_never_stops() -> None:
    shape = make_shape("constant", users=3, spawn_rate=1, run_time_s=None)
    assert shape.tick(1e9) == (3, 1)


def test_step_ramp() -> None:
    shape = make_shape("step", users=10, spawn_rate=5, run_time_s=8, steps=4)
    assert isinstance(shape, StepRamp)
    # 4 steps of 2 s: ceil(10 * k / 4) users for k = 1..4, then the end.
    assert ticks(shape, 9) == [
        (3, 5), (3, 5), (5, 5), (5, 5), (8, 5), (8, 5), (10, 5), (10, 5), None
    ]  # fmt: skip


def test_step_ramp_fractional_times_and_last_step() -> None:
    shape = StepRamp(users=16, steps=3, duration_s=10, spawn_rate=4)
    assert shape.tick(3.33) == (6, 4)
    assert shape.tick(3.34) == (11, 4)
    assert shape.tick(9.999) == (16, 4)
    assert shape.tick(10.0) is None


def test_spike() -> None:
    shape = make_shape("spike", users=20, spawn_rate=2, run_time_s=10, spike_baseline=0.25)
    assert shape == Spike(20, 5, 10, 2, start_s=4.0, length_s=2.0)
    # Baseline ramps at -r; the spike arrives (and leaves) within a second.
    assert ticks(shape, 11) == [
        (5, 2), (5, 2), (5, 2), (5, 2), (20, 20), (20, 20), (5, 20), (5, 20), (5, 20), (5, 20), None
    ]  # fmt: skip


def test_spike_baseline_is_at_least_one_user() -> None:
    shape = make_shape("spike", users=2, spawn_rate=1, run_time_s=10, spike_baseline=0.1)
    assert isinstance(shape, Spike) and shape.baseline == 1


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("ramp", {}, "--load-shape must be one of constant, step, spike"),
        ("constant", {"users": 0}, "--users must be >= 1"),
        ("constant", {"spawn_rate": 0}, "--spawn-rate must be > 0"),
        ("constant", {"run_time_s": 0}, "--run-time must be > 0"),
        ("step", {"run_time_s": None}, "--load-shape step needs --run-time"),
        ("spike", {"run_time_s": None}, "--load-shape spike needs --run-time"),
        ("step", {"steps": 0}, "--ramp-steps must be between 1 and --users (8)"),
        ("step", {"steps": 9}, "--ramp-steps must be between 1 and --users (8)"),
        ("spike", {"spike_baseline": 1.0}, "--spike-baseline must be a fraction"),
    ],
)
def test_bad_parameters(name: str, kwargs: dict[str, object], message: str) -> None:
    options: dict[str, object] = {"users": 8, "spawn_rate": 2.0, "run_time_s": 30.0, **kwargs}
    with pytest.raises(LoadTestConfigError) as caught:
        make_shape(name, **options)  # type: ignore[arg-type]
    assert message in str(caught.value)
