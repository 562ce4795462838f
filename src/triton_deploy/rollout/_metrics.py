"""Triton's own Prometheus metrics of one color: request outcomes and latency over a window.

    sample = parse_triton_metrics(text)            # one pod's /metrics, now
    stats = window_stats({"pod-a": before}, {"pod-a": after})
    stats.error_ratio, stats.requests, stats.p99_ms, stats.worst_model

Counters used (Triton 2.51, per model and version): ``nv_inference_request_success``,
``nv_inference_request_failure`` (every reason), ``nv_inference_request_duration_us``; the p99
comes from ``nv_inference_request_summary_us{quantile="0.99"}``, which Triton only exports
with ``--metrics-config summary_latencies=true`` (chart: ``triton.extraArgs``). A pod that
restarted (counters lower than at the start) counts from zero; a new pod from zero too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ModelWindow", "WindowStats", "parse_triton_metrics", "window_stats"]

_SUCCESS = "nv_inference_request_success"
_FAILURE = "nv_inference_request_failure"
_DURATION = "nv_inference_request_duration_us"
_SUMMARY = "nv_inference_request_summary_us"

# A sample is flat: "<model>|success", "<model>|failure", "<model>|duration_us", "<model>|p99_us".
Sample = dict[str, float]


def parse_triton_metrics(text: str) -> Sample:
    """The counters of one Triton's /metrics page, summed over versions (and failure reasons)."""
    from prometheus_client.parser import text_string_to_metric_families

    sample: Sample = {}
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            model = metric.labels.get("model")
            if model is None:
                continue
            if metric.name == f"{_SUCCESS}_total" or metric.name == _SUCCESS:
                key = f"{model}|success"
            elif metric.name == f"{_FAILURE}_total" or metric.name == _FAILURE:
                key = f"{model}|failure"
            elif metric.name == f"{_DURATION}_total" or metric.name == _DURATION:
                key = f"{model}|duration_us"
            elif metric.name == _SUMMARY and metric.labels.get("quantile") == "0.99":
                key = f"{model}|p99_us"
                sample[key] = max(sample.get(key, 0.0), float(metric.value))
                continue
            else:
                continue
            sample[key] = sample.get(key, 0.0) + float(metric.value)
    return sample


@dataclass
class ModelWindow:
    model: str
    success: float = 0.0
    failure: float = 0.0
    duration_us: float = 0.0
    p99_us: float | None = None

    @property
    def requests(self) -> float:
        return self.success + self.failure

    @property
    def error_ratio(self) -> float:
        return self.failure / self.requests if self.requests else 0.0


@dataclass
class WindowStats:
    """Requests, failures and latency of a color since the baseline."""

    models: dict[str, ModelWindow] = field(default_factory=dict)
    pods: int = 0

    @property
    def requests(self) -> float:
        return sum(m.requests for m in self.models.values())

    @property
    def failures(self) -> float:
        return sum(m.failure for m in self.models.values())

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def mean_ms(self) -> float | None:
        ok = sum(m.success for m in self.models.values())
        return sum(m.duration_us for m in self.models.values()) / ok / 1000.0 if ok else None

    @property
    def p99_ms(self) -> float | None:
        """The highest p99 of any model on any pod (Triton's summaries), None when absent."""
        values = [m.p99_us for m in self.models.values() if m.p99_us is not None]
        return max(values) / 1000.0 if values else None

    def worst_model(self, min_requests: float = 1) -> ModelWindow | None:
        judged = [m for m in self.models.values() if m.requests >= min_requests]
        return max(judged, key=lambda m: m.error_ratio) if judged else None


def window_stats(baseline: Mapping[str, Sample], current: Mapping[str, Sample]) -> WindowStats:
    """Per-model deltas between two scrapes of every pod (``pod name -> sample``)."""
    stats = WindowStats(pods=len(current))
    for pod, sample in current.items():
        before = baseline.get(pod, {})
        restarted = any(
            sample.get(k, 0.0) < v for k, v in before.items() if not k.endswith("p99_us")
        )
        for key, value in sample.items():
            model, kind = key.rsplit("|", 1)
            window = stats.models.setdefault(model, ModelWindow(model))
            if kind == "p99_us":
                window.p99_us = max(window.p99_us or 0.0, value)
                continue
            delta = value if restarted else value - before.get(key, 0.0)
            setattr(window, kind, getattr(window, kind) + max(delta, 0.0))
    return stats
