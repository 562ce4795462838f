"""Service-level objectives of a load test and their verdict (``loadtests/slo/<env>.yaml``).

    environment: local
    models:                      # per model, as reported by the load test (request name)
      digits:
        p50_ms: 40               # latency percentiles over the whole run, milliseconds
        p95_ms: 150
        p99_ms: 300
        max_error_ratio: 0.001   # failed / all requests
        min_rps: 5               # requests per second over the whole run
      ctr: {p99_ms: 300, max_error_ratio: 0.001}
    total:                       # all models together (locust's "Aggregated" row)
      max_error_ratio: 0.001
      min_rps: 20

Every key is optional but each block needs at least one. ``evaluate`` compares the
measurements with each threshold; ``SloReport.table()`` is the summary printed at the end of
a run: each threshold, its limit, the measured value and pass/FAIL. A model listed here that
received no requests fails every one of its thresholds (a silent pass would hide a broken
task mix). Pure pydantic: no locust import here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import LoadTestConfigError, load_yaml_model
from .taskmix import TaskMix

__all__ = [
    "EXIT_SLO_VIOLATED",
    "Check",
    "Measured",
    "Objectives",
    "SloReport",
    "SloSpec",
    "check_coverage",
    "evaluate",
    "load_slo",
]

#: Process exit code of a run that violated an objective (locust itself uses 1 for "there were
#: failed requests", which the error-ratio objective replaces, and 2 for crashes).
EXIT_SLO_VIOLATED = 3

Millis = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Ratio = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]

# threshold key -> (unit, how the measurement must compare with the limit)
_KINDS: dict[str, tuple[str, str]] = {
    "p50_ms": ("ms", "<="),
    "p95_ms": ("ms", "<="),
    "p99_ms": ("ms", "<="),
    "max_error_ratio": ("ratio", "<="),
    "min_rps": ("req/s", ">="),
}


class Objectives(BaseModel):
    """Thresholds for one model, or for all together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50_ms: Millis | None = None
    p95_ms: Millis | None = None
    p99_ms: Millis | None = None
    max_error_ratio: Ratio | None = None
    min_rps: Rate | None = None

    @model_validator(mode="after")
    def _valid(self) -> Objectives:
        given = self.thresholds()
        if not given:
            raise ValueError(f"no thresholds: give at least one of {', '.join(_KINDS)}")
        latencies = [(k, v) for k, v in given.items() if k.endswith("_ms")]
        for (low_key, low), (high_key, high) in itertools.pairwise(latencies):
            if low > high:
                raise ValueError(f"{low_key} ({low:g}) is above {high_key} ({high:g})")
        return self

    def thresholds(self) -> dict[str, float]:
        """The thresholds given, in a fixed order (p50, p95, p99, errors, throughput)."""
        values = self.model_dump()
        return {key: values[key] for key in _KINDS if values[key] is not None}


class SloSpec(BaseModel):
    """One environment's objectives (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str | None = None
    models: dict[str, Objectives] = Field(min_length=1)
    total: Objectives | None = None


def load_slo(path: Path) -> SloSpec:
    """Read and validate an SLO file; ``LoadTestConfigError`` names file, key and reason."""
    return load_yaml_model(path, SloSpec, "SLO")


def check_coverage(slo: SloSpec, mix: TaskMix, *, slo_file: Path, mix_file: Path) -> None:
    """Every model with objectives must get traffic from the mix, or its SLO could not hold."""
    silent = sorted(set(slo.models) - mix.models_called())
    if silent:
        raise LoadTestConfigError(
            f"{slo_file}: models.{silent[0]}: has objectives, but the task mix {mix_file} sends "
            f"it no requests (set a task weight for it, or remove its objectives)"
        )


@dataclass(frozen=True)
class Measured:
    """One model's (or the total's) numbers over the whole run."""

    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def value(self, key: str) -> float:
        if key == "max_error_ratio":
            return self.error_ratio
        if key == "min_rps":
            return self.rps
        return float(getattr(self, key))


@dataclass(frozen=True)
class Check:
    """One threshold and its verdict; ``measured`` is None when nothing was measured."""

    key: str  # as in the file: "models.digits.p99_ms", "total.min_rps"
    limit: float
    measured: float | None
    passed: bool
    note: str = ""

    @property
    def kind(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    def limit_text(self) -> str:
        unit, op = _KINDS.get(self.kind, ("", "="))
        return f"{op} {_format(self.limit, unit, limit=True)}"

    def measured_text(self) -> str:
        if self.measured is None:
            return self.note or "not measured"
        unit, _ = _KINDS.get(self.kind, ("", "="))
        return _format(self.measured, unit, limit=False)

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.key}: {verdict}, measured {self.measured_text()}, limit {self.limit_text()}"


@dataclass
class SloReport:
    source: str
    environment: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def violations(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def table(self) -> str:
        """The end-of-run summary: one row per threshold, then the verdict."""
        env = f" [{self.environment}]" if self.environment else ""
        rows = [("threshold", "limit", "measured", "result")]
        rows += [
            (c.key, c.limit_text(), c.measured_text(), "pass" if c.passed else "FAIL")
            for c in self.checks
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"SLO check{env}: {self.source}"]
        for i, row in enumerate(rows):
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            lines.append(("  " + "  ".join(cells)).rstrip())
            if i == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        failed = self.violations
        if failed:
            lines.append(
                f"SLO FAILED: {len(failed)} of {len(self.checks)} thresholds violated: "
                + ", ".join(c.key for c in failed)
            )
        else:
            lines.append(f"SLO passed: all {len(self.checks)} thresholds met")
        return "\n".join(lines).rstrip()


def evaluate(
    slo: SloSpec,
    measured: Mapping[str, Measured],
    total: Measured,
    *,
    source: str,
    exceptions: int = 0,
) -> SloReport:
    """Compare the run's numbers with each threshold; ``exceptions`` (errors in the load test's
    own code, not failed requests) must be 0: a crashing task measures nothing."""
    report = SloReport(source=source, environment=slo.environment)
    blocks: list[tuple[str, Objectives, Measured | None]] = [
        (f"models.{name}", objectives, measured.get(name))
        for name, objectives in slo.models.items()
    ]
    if slo.total is not None:
        blocks.append(("total", slo.total, total))
    for prefix, objectives, numbers in blocks:
        for kind, limit in objectives.thresholds().items():
            report.checks.append(_check(f"{prefix}.{kind}", kind, limit, numbers))
    report.checks.append(
        Check(
            key="exceptions_in_user_code",
            limit=0,
            measured=float(exceptions),
            passed=exceptions == 0,
        )
    )
    return report


def _check(key: str, kind: str, limit: float, numbers: Measured | None) -> Check:
    if numbers is None or numbers.requests == 0:
        return Check(key, limit, None, passed=False, note="no requests")
    value = numbers.value(kind)
    if math.isnan(value):
        return Check(key, limit, None, passed=False, note="not measured")
    _, op = _KINDS[kind]
    passed = value >= limit if op == ">=" else value <= limit
    return Check(key, limit, value, passed)


def _format(value: float, unit: str, *, limit: bool) -> str:
    if unit == "ratio":
        return f"{value * 100:.3g} %"
    if unit == "req/s":
        return f"{value:g} req/s" if limit else f"{value:.1f} req/s"
    if unit == "ms":
        return f"{value:g} ms"
    return f"{value:g}"
