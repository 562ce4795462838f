"""Triton's Prometheus ``/metrics``: scraped, parsed with prometheus_client, and differenced.

Per model (summed over versions and failure reasons): requests that succeeded and failed, the
cumulative request and queue time, and, when the server runs with
``--metrics-config=summary_latencies=true``, the latency quantiles of its sliding window.
Two scrapes ``interval_s`` apart give rates and the error ratio of that interval.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from triton_deploy.errors import ObservabilityError

__all__ = [
    "MetricsWindow",
    "ModelCounters",
    "Sample",
    "exposed_samples",
    "parse_metrics",
    "scrape",
    "window",
]


@dataclass(frozen=True)
class Sample:
    """One exposed series: its name as Prometheus stores it, its labels and value."""

    name: str
    labels: dict[str, str]
    value: float


def exposed_samples(text: str) -> list[Sample]:
    """Every series of an exposition, named as exposed (prometheus_client's text parser adds
    ``_total`` to counter samples; Prometheus itself keeps the exposed name)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise ObservabilityError(
            "reading /metrics needs prometheus-client: pip install 'triton-deploy[monitor]'"
        ) from None
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name
            if (
                family.type == "counter"
                and name == f"{family.name}_total"
                and f"{family.name}_total" not in text
            ):
                name = family.name
            out.append(Sample(name, dict(s.labels), float(s.value)))
    return out


@dataclass
class ModelCounters:
    success: float = 0.0
    failure: float = 0.0
    request_us: float = 0.0
    queue_us: float = 0.0
    inferences: float = 0.0
    executions: float = 0.0
    # quantile -> µs (request summary, sliding window); empty without summary_latencies.
    quantiles: dict[float, float] = field(default_factory=dict)


_COUNTERS = {
    "nv_inference_request_success": "success",
    "nv_inference_request_failure": "failure",
    "nv_inference_request_duration_us": "request_us",
    "nv_inference_queue_duration_us": "queue_us",
    "nv_inference_count": "inferences",
    "nv_inference_exec_count": "executions",
}


def parse_metrics(
    text: str, *, color: str | None = None
) -> dict[tuple[str, str | None], ModelCounters]:
    """Counters per (model, color); the color label wins over ``color`` when the series has it."""
    models: dict[tuple[str, str | None], ModelCounters] = {}
    try:
        samples = exposed_samples(text)
    except ValueError as exc:
        raise ObservabilityError(f"not a Prometheus exposition: {exc}") from None
    for s in samples:
        model = s.labels.get("model")
        if model is None:
            continue
        key = (model, s.labels.get("color", color))
        if s.name in _COUNTERS:
            counters = models.setdefault(key, ModelCounters())
            attr = _COUNTERS[s.name]
            setattr(counters, attr, getattr(counters, attr) + s.value)
        elif s.name == "nv_inference_request_summary_us" and "quantile" in s.labels:
            counters = models.setdefault(key, ModelCounters())
            q = float(s.labels["quantile"])
            # Several versions: the slowest one's quantile (NaN = no request in the window).
            if s.value == s.value:
                counters.quantiles[q] = max(counters.quantiles.get(q, 0.0), s.value)
    return models


def scrape(url: str, *, timeout_s: float = 10.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return str(reply.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ObservabilityError(f"cannot scrape {url}: {exc}") from None


@dataclass
class MetricsWindow:
    """What happened between two scrapes, per (model, color)."""

    interval_s: float
    before: dict[tuple[str, str | None], ModelCounters]
    after: dict[tuple[str, str | None], ModelCounters]

    def keys(self) -> list[tuple[str, str | None]]:
        return sorted(self.after, key=lambda k: (k[0], k[1] or ""))

    def delta(self, key: tuple[str, str | None]) -> ModelCounters:
        a, b = self.after[key], self.before.get(key, ModelCounters())
        return ModelCounters(
            **{attr: getattr(a, attr) - getattr(b, attr) for attr in _COUNTERS.values()},
            quantiles=dict(a.quantiles),
        )


def window(
    url: str,
    *,
    interval_s: float,
    color: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> MetricsWindow:
    """Scrape twice, ``interval_s`` apart."""
    before = parse_metrics(scrape(url), color=color)
    started = time.monotonic()
    sleep(interval_s)
    after = parse_metrics(scrape(url), color=color)
    return MetricsWindow(max(time.monotonic() - started, 1e-9), before, after)
