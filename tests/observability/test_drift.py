"""PSI and KS of live features against golden cases."""

from __future__ import annotations

import numpy as np
import pytest

from triton_deploy.observability import buckets, ks_statistic, psi
from triton_deploy.observability._drift import samples, tensor_drift

rng = np.random.default_rng(0)


def test_same_distribution_is_no_shift_and_a_moved_one_is() -> None:
    reference = rng.normal(size=2000)
    assert psi(reference, rng.normal(size=1000)) < 0.05
    assert 0.1 < psi(reference, rng.normal(0.5, 1.0, size=1000)) < 0.5
    assert psi(reference, rng.normal(2.0, 1.0, size=1000)) > 1.0
    assert ks_statistic(reference, rng.normal(size=1000)) < 0.08
    assert ks_statistic(reference, rng.normal(2.0, 1.0, size=1000)) > 0.6


def test_text_and_few_valued_features_compare_value_by_value() -> None:
    words = np.array([b"a", b"b", b"c"] * 100, dtype=object)
    b = buckets(words, np.array([b"a", b"b", b"c", b"zz"] * 50, dtype=object))
    assert b.kind == "categorical" and b.labels == ["a", "b", "c", "other"]
    assert b.live.tolist() == [50, 50, 50, 50] and b.reference[-1] == 0
    assert b.psi > 0.25  # a quarter of the traffic is a value never seen
    # 0/1 flags and constants: equal up to the 6 digits Triton writes.
    flags = np.array([0.0, 1.0] * 100, dtype=np.float32)
    assert psi(flags, flags + np.float32(3e-7)) < 1e-9
    assert psi(np.zeros(100), np.ones(100)) > 5  # a constant that moved
    assert ks_statistic(words, words) is None


def test_non_finite_live_values_are_left_to_the_nan_check() -> None:
    reference = rng.normal(size=500)
    live = rng.normal(size=500)
    live[::10] = np.nan
    assert psi(reference, live) < 0.1
    assert psi(reference, np.full(10, np.nan)) == 0.0


def test_samples_split_batches_into_rows_and_features() -> None:
    batch = np.arange(24).reshape(3, 2, 4)
    assert samples(batch, batched=True).shape == (3, 8)
    assert samples(batch, batched=False).shape == (1, 24)


def test_tensor_drift_names_the_worst_feature() -> None:
    reference = rng.normal(size=(800, 3))
    live = rng.normal(size=(400, 3))
    live[:, 2] += 3.0
    drift = tensor_drift("x", "input", reference, live, batched=True)
    assert not isinstance(drift, str)
    assert drift.worst.feature == 2 and drift.psi > 1
    assert drift.to_json()["worst_feature"] == 2 and drift.n_live == 400
    mismatch = tensor_drift("x", "input", reference, live[:, :2], batched=True)
    assert mismatch == "input x: 2 values per sample live, 3 in the golden cases"


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_psi_is_symmetric_enough_to_read_both_ways(shift: float) -> None:
    a, b = rng.normal(size=3000), rng.normal(shift, 1.0, size=3000)
    assert abs(psi(a, b) - psi(b, a)) < 0.05
