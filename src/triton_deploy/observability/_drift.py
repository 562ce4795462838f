"""Drift of live tensors against the golden cases the build kept: PSI and the KS statistic.

Each tensor is split into features: one per element of a sample (a sample is one row of the
batch for models that batch, the whole tensor otherwise). Numeric features with more than
``bins`` distinct reference values are binned at the reference's deciles; features with fewer
(constants, flags, small integer codes) and text (BYTES) are compared value by value (numbers
equal up to a relative 1e-4), with an ``other`` bucket for values the reference never had.

PSI = sum((live% - ref%) * ln(live% / ref%)) over the buckets, each share floored at 1e-4.
Common reading: below 0.1 no shift, 0.1-0.25 a moderate one, above 0.25 a significant one.
The KS statistic is the largest gap between the two empirical CDFs (binned numeric features
only: on a few distinct values, rounding alone would move it).
Non-finite live values are left out here and reported as the NaN/inf share instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Buckets",
    "FeatureDrift",
    "TensorDrift",
    "buckets",
    "ks_statistic",
    "psi",
    "samples",
    "tensor_drift",
]

Array = npt.NDArray[Any]

BINS = 10
_FLOOR = 1e-4


@dataclass
class FeatureDrift:
    """One feature (element of a sample) of one tensor."""

    feature: int
    buckets: Buckets
    ks: float | None
    # The values compared, kept for the plot (not written to JSON).
    reference: Array = field(repr=False)
    live: Array = field(repr=False)

    @property
    def kind(self) -> str:
        return self.buckets.kind

    @property
    def psi(self) -> float:
        return self.buckets.psi


@dataclass
class TensorDrift:
    """A tensor's drift: its worst feature by PSI, and every feature."""

    tensor: str
    role: str  # "input" | "output"
    n_reference: int
    n_live: int
    features: list[FeatureDrift]

    @property
    def worst(self) -> FeatureDrift:
        return max(self.features, key=lambda f: f.psi)

    @property
    def psi(self) -> float:
        return self.worst.psi

    @property
    def ks(self) -> float | None:
        values = [f.ks for f in self.features if f.ks is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "tensor": self.tensor,
            "role": self.role,
            "n_reference": self.n_reference,
            "n_live": self.n_live,
            "features": len(self.features),
            "psi": round(self.psi, 6),
            "worst_feature": worst.feature,
            "ks": None if self.ks is None else round(self.ks, 6),
        }


def samples(array: Array, *, batched: bool) -> Array:
    """(n samples, features): rows of the batch, or the whole tensor as one sample."""
    array = np.asarray(array)
    if batched and array.ndim >= 1:
        return array.reshape(array.shape[0], -1)
    return array.reshape(1, -1)


def _text(values: Array) -> Array:
    return np.array(
        [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values],
        dtype=object,
    )


def _shares(counts: Array) -> Array:
    total = counts.sum()
    shares = counts / total if total else np.zeros_like(counts, dtype=float)
    return np.maximum(shares, _FLOOR)


def _psi_from_counts(ref_counts: Array, live_counts: Array) -> float:
    if ref_counts.sum() == 0 or live_counts.sum() == 0:
        return 0.0
    p, q = _shares(ref_counts.astype(float)), _shares(live_counts.astype(float))
    return float(np.sum((q - p) * np.log(q / p)))


@dataclass(frozen=True)
class Buckets:
    """How one feature was bucketed, with the counts on each side (the last bucket of a
    ``categorical`` feature is ``other``)."""

    kind: str  # "numeric" | "categorical"
    labels: list[str]
    reference: Array
    live: Array

    @property
    def psi(self) -> float:
        return _psi_from_counts(self.reference, self.live)


def buckets(reference: Array, live: Array, *, bins: int = BINS) -> Buckets:
    """Bucket one feature (see the module docstring); non-finite live values are left out."""
    if reference.dtype == object or live.dtype == object:
        return _categorical(_text(reference), _text(live))
    ref = reference.astype(np.float64)
    cur = live.astype(np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0:
        return Buckets("numeric", [], np.zeros(0), np.zeros(0))
    if np.unique(ref).size <= bins:
        return _discrete(ref, cur)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    live_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    labels = [f"[{a}, {b})" for a, b in itertools.pairwise(bounds)]
    return Buckets("numeric", labels, ref_counts, live_counts)


def psi(reference: Array, live: Array, *, bins: int = BINS) -> float:
    """PSI of one feature (0.0 when either side has no finite value)."""
    return buckets(reference, live, bins=bins).psi


def _categorical(ref: Array, cur: Array) -> Buckets:
    categories, ref_counts = np.unique(ref, return_counts=True)
    index = {c: i for i, c in enumerate(categories.tolist())}
    live_counts = np.zeros(categories.size + 1, dtype=np.int64)
    for value in cur.tolist():
        live_counts[index.get(value, categories.size)] += 1
    labels = [str(c) for c in categories.tolist()] + ["other"]
    return Buckets("categorical", labels, np.append(ref_counts, 0), live_counts)


def _discrete(ref: Array, cur: Array) -> Buckets:
    """Few distinct reference values: a live value counts for the reference value it equals up
    to a relative 1e-4 (trace files keep 6 significant digits; backends differ in the last
    bits), anything else goes to ``other``."""
    values, ref_counts = np.unique(ref, return_counts=True)
    right = np.clip(np.searchsorted(values, cur), 0, values.size - 1)
    left = np.clip(right - 1, 0, values.size - 1)
    nearest = np.where(np.abs(cur - values[left]) <= np.abs(cur - values[right]), left, right)
    close = np.abs(cur - values[nearest]) <= 1e-4 * np.maximum(1.0, np.abs(values[nearest]))
    live_counts = np.bincount(np.where(close, nearest, values.size), minlength=values.size + 1)
    labels = [f"{v:.4g}" for v in values] + ["other"]
    return Buckets("categorical", labels, np.append(ref_counts, 0), live_counts)


def ks_statistic(reference: Array, live: Array) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic (numeric features; None for text)."""
    if reference.dtype == object or live.dtype == object:
        return None
    a = np.sort(reference[np.isfinite(reference)].astype(np.float64))
    b = np.sort(live[np.isfinite(live)].astype(np.float64))
    if a.size == 0 or b.size == 0:
        return None
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def tensor_drift(
    name: str, role: str, reference: Array, live: Array, *, batched: bool
) -> TensorDrift | str:
    """Drift of every feature of one tensor, or the reason it cannot be compared."""
    ref = samples(reference, batched=batched)
    cur = samples(live, batched=batched)
    if ref.shape[1] != cur.shape[1]:
        return (
            f"{role} {name}: {cur.shape[1]} values per sample live, "
            f"{ref.shape[1]} in the golden cases"
        )
    features = []
    for j in range(ref.shape[1]):
        bucketed = buckets(ref[:, j], cur[:, j])
        # KS assumes continuous values: on a few distinct values, rounding alone moves it.
        ks = ks_statistic(ref[:, j], cur[:, j]) if bucketed.kind == "numeric" else None
        features.append(FeatureDrift(j, bucketed, ks, ref[:, j], cur[:, j]))
    return TensorDrift(name, role, ref.shape[0], cur.shape[0], features)
