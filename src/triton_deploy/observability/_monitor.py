"""``tdeploy monitor``: per model and color, traffic, errors, latency, NaN/inf and drift, judged.

Sources (either or both):

- the **inference log** (Triton's trace files, or rows written from them): request count and
  rate over the traced span, error ratio (level ``TENSORS``: a request with inputs and no
  outputs failed), p50/p99 of Triton's request time, the share of NaN/inf in each output and
  input, and the drift of each input and output feature against the golden cases the build kept;
- **/metrics** scraped twice ``interval`` apart: request rate and error ratio of every request
  (not only the traced ones), mean latency, p50/p99 when the server exposes latency summaries.
  When both are given, traffic numbers come from /metrics and data numbers from the log.

Every threshold that is set becomes a check; a check that cannot be judged (too few samples, no
golden case, no status without ``TENSORS``) says why and does not fail the run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table

from triton_deploy.observability._drift import TensorDrift, samples, tensor_drift
from triton_deploy.observability._inference_log import (
    STATUS_FAILED,
    STATUS_OK,
    InferenceLog,
    InferenceRecord,
)
from triton_deploy.observability._metrics import MetricsWindow
from triton_deploy.repository import GoldenCase

__all__ = ["Check", "ModelReport", "MonitorReport", "Thresholds", "monitor"]

Array = npt.NDArray[Any]


class Thresholds(BaseModel):
    """Limits a healthy model stays within; None leaves a limit out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_ratio: float | None = Field(0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(None, gt=0)
    max_nonfinite_ratio: float | None = Field(0.0, ge=0, le=1)
    max_psi: float | None = Field(0.25, ge=0)
    max_ks: float | None = Field(None, ge=0, le=1)
    min_samples: int = Field(100, ge=1, description="live samples needed to judge drift")


@dataclass
class Check:
    name: str
    value: float | None
    threshold: float | None
    passed: bool | None  # None: not judged (``detail`` says why)
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _round(self.value),
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass
class ModelReport:
    model: str
    color: str | None
    source: str
    requests: int = 0
    failed: int | None = None
    rate_per_s: float | None = None
    error_ratio: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    nonfinite: dict[str, float] = field(default_factory=dict)  # "output y" -> share
    drift: list[TensorDrift] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    @property
    def violations(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "color": self.color,
            "source": self.source,
            "passed": self.passed,
            "requests": self.requests,
            "failed": self.failed,
            "rate_per_s": _round(self.rate_per_s),
            "error_ratio": _round(self.error_ratio),
            "mean_ms": _round(self.mean_ms),
            "p50_ms": _round(self.p50_ms),
            "p99_ms": _round(self.p99_ms),
            "nonfinite": {k: _round(v) for k, v in self.nonfinite.items()},
            "drift": [d.to_json() for d in self.drift],
            "checks": [c.to_json() for c in self.checks],
            "notes": self.notes,
        }


@dataclass
class MonitorReport:
    models: list[ModelReport]
    thresholds: Thresholds
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "thresholds": self.thresholds.model_dump(),
            "models": [m.to_json() for m in self.models],
            "notes": self.notes,
        }

    def table(self) -> Table:
        table = Table(title="tdeploy monitor", title_justify="left")
        for column in (
            "model",
            "color",
            "source",
            "requests",
            "req/s",
            "errors",
            "p50 ms",
            "p99 ms",
            "NaN/inf",
            "max PSI",
            "result",
        ):
            table.add_column(
                column, justify="left" if column in ("model", "color", "source") else "right"
            )
        for m in self.models:
            worst_nan = max(m.nonfinite.values(), default=None)
            drift = max(m.drift, key=lambda d: d.psi, default=None)
            table.add_row(
                m.model,
                m.color or "-",
                m.source,
                str(m.requests),
                _fmt(m.rate_per_s, "{:.1f}"),
                _fmt(m.error_ratio, "{:.2%}"),
                _fmt(m.p50_ms, "{:.2f}"),
                _fmt(m.p99_ms, "{:.2f}"),
                _fmt(worst_nan, "{:.2%}"),
                f"{drift.psi:.3f} ({drift.role} {drift.tensor}[{drift.worst.feature}])"
                if drift
                else "-",
                "[green]pass[/]" if m.passed else "[bold red]FAIL[/]",
            )
        return table

    def violation_lines(self) -> list[str]:
        lines = []
        for m in self.models:
            for c in m.violations:
                lines.append(
                    f"{m.model} ({m.color or 'no color'}): {c.name} = {_fmt(c.value, '{:.4g}')} "
                    f"> {c.threshold}{f' ({c.detail})' if c.detail else ''}"
                )
        return lines


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


# -- the computation ----------------------------------------------------------------------------


def monitor(
    *,
    log: InferenceLog | None = None,
    metrics: MetricsWindow | None = None,
    golden: Mapping[str, GoldenCase] | None = None,
    batched: Mapping[str, bool] | None = None,
    thresholds: Thresholds | None = None,
    models: Iterable[str] | None = None,
) -> MonitorReport:
    """Judge every (model, color) seen in the log or in /metrics (see the module docstring).

    ``batched`` says which models batch (axis 0 of each tensor is the sample axis); models not
    in it are taken to batch. ``golden`` maps model names to the build's golden cases.
    """
    thresholds = thresholds or Thresholds()
    golden = golden or {}
    batched = batched or {}
    wanted = set(models) if models else None
    groups: dict[tuple[str, str | None], list[InferenceRecord]] = defaultdict(list)
    for rec in log.records if log else []:
        groups[(rec.model, rec.color)].append(rec)
    keys = set(groups) | set(metrics.keys() if metrics else [])
    if wanted is not None:
        keys = {k for k in keys if k[0] in wanted}
    report = MonitorReport([], thresholds)
    if log is not None and log.incomplete:
        report.notes.append(
            f"{len(log.incomplete)} trace file(s) still being written were skipped: "
            + ", ".join(str(p) for p in log.incomplete[:3])
        )
    if wanted is not None:
        for name in sorted(wanted - {k[0] for k in keys}):
            report.notes.append(f"model {name}: no request in the log or in /metrics")
    for key in sorted(keys, key=lambda k: (k[0], k[1] or "")):
        model, color = key
        records = groups.get(key, [])
        use_metrics = metrics is not None and key in metrics.after
        source = "+".join(
            s for s, used in (("metrics", use_metrics), ("log", bool(records))) if used
        )
        m = ModelReport(model, color, source)
        if use_metrics:
            assert metrics is not None
            _traffic_from_metrics(m, metrics, key)
        else:
            _traffic_from_log(m, records)
        if records:
            _data_quality(m, records, golden.get(model), batched.get(model, True), thresholds)
        _traffic_checks(m, thresholds)
        report.models.append(m)
    return report


def _traffic_from_metrics(
    m: ModelReport, metrics: MetricsWindow, key: tuple[str, str | None]
) -> None:
    d = metrics.delta(key)
    total = d.success + d.failure
    m.requests = int(total)
    m.failed = int(d.failure)
    m.rate_per_s = total / metrics.interval_s
    m.error_ratio = d.failure / total if total else None
    m.mean_ms = d.request_us / total / 1000.0 if total else None
    if d.quantiles:
        m.p50_ms = d.quantiles[0.5] / 1000.0 if 0.5 in d.quantiles else None
        m.p99_ms = d.quantiles[0.99] / 1000.0 if 0.99 in d.quantiles else None
    else:
        m.notes.append(
            "no latency quantiles in /metrics: start Triton with --metrics-config=summary_latencies=true"
        )


def _traffic_from_log(m: ModelReport, records: list[InferenceRecord]) -> None:
    m.requests = len(records)
    judged = [r for r in records if r.status in (STATUS_OK, STATUS_FAILED)]
    if judged:
        m.failed = sum(r.status == STATUS_FAILED for r in judged)
        m.error_ratio = m.failed / len(judged)
    else:
        m.notes.append("no request status in the log: trace with level=TENSORS to record failures")
    latencies = np.array(
        [r.latency_us for r in records if r.status != STATUS_FAILED and r.latency_us is not None]
    )
    if latencies.size:
        m.mean_ms = float(latencies.mean()) / 1000.0
        m.p50_ms = float(np.percentile(latencies, 50)) / 1000.0
        m.p99_ms = float(np.percentile(latencies, 99)) / 1000.0
    # Steady-clock timestamps compare within one server process (one trace file series) only.
    by_source: dict[str | None, list[int]] = defaultdict(list)
    for r in records:
        if r.start_ns is not None:
            by_source[r.source].append(r.start_ns)
    rates = [
        (len(starts) - 1) / ((max(starts) - min(starts)) / 1e9)
        for starts in by_source.values()
        if len(starts) > 1 and max(starts) > min(starts)
    ]
    m.rate_per_s = sum(rates) if rates else None


def _stack(
    records: list[InferenceRecord], role: str, batched: bool
) -> tuple[dict[str, Array], list[str]]:
    """Live samples per tensor name (inputs of every request, outputs of successful ones)."""
    parts: dict[str, list[Array]] = defaultdict(list)
    for r in records:
        tensors = r.inputs if role == "input" else r.outputs
        for name, array in (tensors or {}).items():
            if array is not None:
                parts[name].append(samples(array, batched=batched))
    stacked, notes = {}, []
    for name, arrays in parts.items():
        widths = {a.shape[1] for a in arrays}
        if len(widths) > 1:
            notes.append(f"{role} {name}: variable shape, not compared")
            continue
        stacked[name] = np.concatenate(arrays, axis=0)
    return stacked, notes


def _data_quality(
    m: ModelReport,
    records: list[InferenceRecord],
    golden: GoldenCase | None,
    batched: bool,
    t: Thresholds,
) -> None:
    if not any(r.inputs is not None or r.outputs is not None for r in records):
        m.notes.append(
            "no tensors in the log (trace with level=TENSORS): no NaN/inf or drift check"
        )
        return
    live_in, notes_in = _stack(records, "input", batched)
    live_out, notes_out = _stack(
        [r for r in records if r.status != STATUS_FAILED], "output", batched
    )
    m.notes += notes_in + notes_out
    for role, tensors in (("input", live_in), ("output", live_out)):
        for name, values in sorted(tensors.items()):
            if values.dtype != object and np.issubdtype(values.dtype, np.floating) and values.size:
                share = float(1.0 - np.isfinite(values).mean())
                m.nonfinite[f"{role} {name}"] = share
                # NaN inputs can be legitimate (missing values for tree models): outputs only.
                if role == "output" and t.max_nonfinite_ratio is not None:
                    m.checks.append(
                        Check(
                            f"nonfinite output {name}",
                            share,
                            t.max_nonfinite_ratio,
                            share <= t.max_nonfinite_ratio,
                        )
                    )
    if golden is None:
        m.notes.append("no golden case for this model: drift not measured")
        return
    for role, tensors, reference in (
        ("input", live_in, golden.inputs),
        ("output", live_out, golden.expected),
    ):
        for name in sorted(set(tensors) & set(reference)):
            # Both sides as (samples, features): axis 0 of a 2-D array is the sample axis.
            ref = samples(np.asarray(reference[name]), batched=batched)
            result = tensor_drift(name, role, ref, tensors[name], batched=True)
            if isinstance(result, str):
                m.notes.append(result)
                continue
            m.drift.append(result)
            enough = result.n_live >= t.min_samples
            why = "" if enough else f"{result.n_live} live samples < {t.min_samples}"
            if t.max_psi is not None:
                m.checks.append(
                    Check(
                        f"psi {role} {name}",
                        result.psi,
                        t.max_psi,
                        (result.psi <= t.max_psi) if enough else None,
                        why or f"worst feature {result.worst.feature}",
                    )
                )
            if t.max_ks is not None and result.ks is not None:
                m.checks.append(
                    Check(
                        f"ks {role} {name}",
                        result.ks,
                        t.max_ks,
                        (result.ks <= t.max_ks) if enough else None,
                        why,
                    )
                )


def _traffic_checks(m: ModelReport, t: Thresholds) -> None:
    if t.max_error_ratio is not None:
        judged = m.error_ratio is not None
        m.checks.append(
            Check(
                "error ratio",
                m.error_ratio,
                t.max_error_ratio,
                (m.error_ratio <= t.max_error_ratio)
                if judged and m.error_ratio is not None
                else None,
                "" if judged else "no request status",
            )
        )
    if t.max_p99_ms is not None:
        m.checks.append(
            Check(
                "p99 ms",
                m.p99_ms,
                t.max_p99_ms,
                (m.p99_ms <= t.max_p99_ms) if m.p99_ms is not None else None,
                "" if m.p99_ms is not None else "no latency",
            )
        )
