"""Drift of live tensors against the golden cases the build kept: PSI and the KS statistic.

Each tensor is split into features: one per element of a sample (a sample is one row of the
batch for models that batch, the whole tensor otherwise). Numeric features with more than
``bins`` distinct reference values are binned at the reference's deciles; features with fewer
(constants, flags, small integer codes) and text (BYTES) are compared value by value, with an
``other`` bucket for values the reference never had.

PSI = sum((live% - ref%) * ln(live% / ref%)) over the buckets, each share floored at 1e-4.
Common reading: below 0.1 no shift, 0.1-0.25 a moderate one, above 0.25 a significant one.
The KS statistic is the largest gap between the two empirical CDFs (numeric features only).
Non-finite live values are left out here and reported as the NaN/inf share instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FeatureDrift", "TensorDrift", "ks_statistic", "psi", "samples", "tensor_drift"]

Array = npt.NDArray[Any]

BINS = 10
_FLOOR = 1e-4


@dataclass
class FeatureDrift:
    """One feature (element of a sample) of one tensor."""

    feature: int
    kind: str  # "numeric" | "categorical"
    psi: float
    ks: float | None
    # The values compared, kept for the plot (not written to JSON).
    reference: Array = field(repr=False)
    live: Array = field(repr=False)


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
    p, q = _shares(ref_counts.astype(float)), _shares(live_counts.astype(float))
    return float(np.sum((q - p) * np.log(q / p)))


def psi(reference: Array, live: Array, *, bins: int = BINS) -> tuple[float, str]:
    """PSI of one feature and how it was bucketed (``numeric`` or ``categorical``)."""
    if reference.dtype == object or live.dtype == object:
        ref, cur = _text(reference), _text(live)
        return _categorical_psi(ref, cur), "categorical"
    ref = reference.astype(np.float64)
    cur = live.astype(np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        return 0.0, "numeric"
    if np.unique(ref).size <= bins:
        return _categorical_psi(ref, cur), "categorical"
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    live_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return _psi_from_counts(ref_counts, live_counts), "numeric"


def _categorical_psi(ref: Array, cur: Array) -> float:
    categories, ref_counts = np.unique(ref, return_counts=True)
    index = {c: i for i, c in enumerate(categories.tolist())}
    live_counts = np.zeros(categories.size + 1)
    for value in cur.tolist():
        live_counts[index.get(value, categories.size)] += 1
    return _psi_from_counts(np.append(ref_counts, 0), live_counts)


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
        value, kind = psi(ref[:, j], cur[:, j])
        features.append(
            FeatureDrift(j, kind, value, ks_statistic(ref[:, j], cur[:, j]), ref[:, j], cur[:, j])
        )
    return TensorDrift(name, role, ref.shape[0], cur.shape[0], features)
