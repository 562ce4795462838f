"""The monitor's PNG: live vs golden distributions of the most drifted features, per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.errors import ObservabilityError
from triton_deploy.observability._drift import FeatureDrift, TensorDrift
from triton_deploy.observability._monitor import MonitorReport

__all__ = ["plot_distributions"]

PANELS_PER_MODEL = 4


def _panels(drift: list[TensorDrift]) -> list[tuple[TensorDrift, FeatureDrift]]:
    # Each output's worst feature first (what the model answers), then the worst inputs.
    outputs = sorted((d for d in drift if d.role == "output"), key=lambda d: -d.psi)
    inputs = [
        (d, f)
        for d in drift
        if d.role == "input"
        for f in sorted(d.features, key=lambda f: -f.psi)[:PANELS_PER_MODEL]
    ]
    inputs.sort(key=lambda pair: -pair[1].psi)
    chosen = [(d, d.worst) for d in outputs] + inputs
    return chosen[:PANELS_PER_MODEL]


def plot_distributions(report: MonitorReport, path: Path) -> Path | None:
    """One row per model with golden cases: histograms (numeric) or shares (text) of the
    reference and live values. Returns None when no model has drift data to show."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ObservabilityError(
            "the monitor's plot needs matplotlib: pip install 'triton-deploy[monitor]' "
            "(or pass --no-plot)"
        ) from None
    rows = [(m, _panels(m.drift)) for m in report.models if m.drift]
    if not rows:
        return None
    fig, axes = plt.subplots(
        len(rows), PANELS_PER_MODEL, figsize=(4 * PANELS_PER_MODEL, 3 * len(rows)), squeeze=False
    )
    for r, (model, panels) in enumerate(rows):
        for c in range(PANELS_PER_MODEL):
            ax = axes[r][c]
            if c >= len(panels):
                ax.axis("off")
                continue
            tensor, feature = panels[c]
            _draw(ax, feature)
            color = "tab:red" if feature.psi > (report.thresholds.max_psi or np.inf) else "black"
            ax.set_title(
                f"{model.model}{f' ({model.color})' if model.color else ''}\n"
                f"{tensor.role} {tensor.tensor}[{feature.feature}]  PSI {feature.psi:.3f}",
                fontsize=9,
                color=color,
            )
            if r == 0 and c == 0:
                ax.legend(fontsize=8)
    fig.suptitle("live (traced requests) vs golden cases kept by the build", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _draw(ax: Any, feature: FeatureDrift) -> None:
    b = feature.buckets
    if b.kind == "categorical":
        # The buckets the PSI used: reference values (or categories) and "other".
        keep = [i for i in range(len(b.labels)) if b.reference[i] or b.live[i]][:12]
        x = np.arange(len(keep))
        ref_share = b.reference[keep] / max(b.reference.sum(), 1)
        live_share = b.live[keep] / max(b.live.sum(), 1)
        ax.bar(x - 0.2, ref_share, width=0.4, label="golden", alpha=0.7)
        ax.bar(x + 0.2, live_share, width=0.4, label="live", alpha=0.7)
        ax.set_xticks(x, [b.labels[i][:12] for i in keep], rotation=45, fontsize=7)
        ax.set_ylabel("share")
        return
    r = feature.reference.astype(np.float64)
    v = feature.live.astype(np.float64)
    r, v = r[np.isfinite(r)], v[np.isfinite(v)]
    both = np.concatenate([r, v])
    if both.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", transform=ax.transAxes)
        return
    low, high = float(both.min()), float(both.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 30)
    ax.hist(r, bins=bins, density=True, alpha=0.5, label="golden")
    ax.hist(v, bins=bins, density=True, alpha=0.5, label="live")
    ax.set_ylabel("density")
