"""Every metric the chart's alerts, HPA (through prometheus-adapter) and dashboard use exists on
a real tritonserver under load, with the labels the expressions use.

The expressions are taken from the rendered chart (Helm's own engine) and parsed with a real
PromQL parser (promql-parser); the metrics were scraped from the local tritonserver 2.51, started
with the chart's own --metrics-config flags, while the load of conftest.py ran. Labels a series
gets from being scraped (the ServiceMonitor's target labels) are taken from the rendered
ServiceMonitor, not assumed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import promql_parser as promql
import pytest
import yaml
from chartargs import CHART, NAMESPACE, dashboard, one, render
from observetools import Run

from triton_deploy.observability import exposed_samples

pytestmark = pytest.mark.server

# Labels Prometheus (prometheus-operator) puts on every series of a ServiceMonitor target:
# https://prometheus-operator.dev/docs/developer/getting-started/ (target labels), plus the
# ServiceMonitor's podTargetLabels, read from the rendered object below.
OPERATOR_TARGET_LABELS = {"namespace", "pod", "service", "endpoint", "container", "instance", "job"}
# Series no Triton exposes, with where they come from.
EXTERNAL = {
    "up": "Prometheus, one per scraped target",
    "kube_deployment_spec_replicas": "kube-state-metrics",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    # the shed-ratio alert reads the load shedder sidecar's own exporter (HAProxy, port 8404),
    # not Triton's /metrics; tests/charts/test_chart_shedder.py checks the exporter's config
    "haproxy_frontend_http_requests_total": "the shedder sidecar's HAProxy exporter",
    "haproxy_frontend_intercepted_requests_total": "the shedder sidecar's HAProxy exporter",
}
# GPU metrics (label gpu_uuid) exist only where Triton sees a GPU: Triton's docs/user_guide/metrics.md
# ("GPU Metrics"). They cannot be scraped on this CPU-only machine.
GPU_ONLY = {
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_power_usage",
    "nv_gpu_power_limit",
    "nv_energy_consumption",
}
GPU_LABELS = {"gpu_uuid"}


@dataclass
class Use:
    """Where a metric is used and which of its labels the expression relies on."""

    where: str
    labels: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)  # label="value" matchers


def _walk(node: Any, where: str, required: set[str], uses: dict[str, list[Use]]) -> None:
    if isinstance(node, promql.VectorSelector):
        use = Use(where, set(required))
        for m in node.matchers.matchers:
            use.labels.add(m.name)
            if m.op == promql.MatchOp.Equal and "$" not in m.value:
                use.values[m.name] = m.value
        uses[node.name].append(use)
    elif isinstance(node, promql.MatrixSelector):
        _walk(node.vector_selector, where, required, uses)
    elif isinstance(node, promql.AggregateExpr):
        labels = set(node.modifier.labels) if node.modifier else set()
        _walk(node.expr, where, required | labels, uses)
    elif isinstance(node, promql.BinaryExpr):
        # on (...): the labels both sides are matched by must exist on both.
        matching = node.modifier.matching if node.modifier is not None else None
        labels: set[str] = set()
        if matching is not None and matching.type == promql.LabelModifierType.Include:
            labels = set(matching.labels)
        _walk(node.lhs, where, required | labels, uses)
        _walk(node.rhs, where, required | labels, uses)
    elif isinstance(node, promql.Call):
        for arg in node.args:
            _walk(arg, where, required, uses)
    elif isinstance(node, (promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        _walk(node.expr, where, required, uses)


def _grafana(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m")


def used_metrics() -> tuple[dict[str, list[Use]], set[str]]:
    """Metric name -> uses, from the alerts, the HPA's adapter rule and the dashboard; and the
    labels a scrape adds (from the rendered ServiceMonitor)."""
    docs = render({})
    uses: dict[str, list[Use]] = defaultdict(list)

    rule = one(docs, "PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "TritonHighQueueTime", "TritonHighFailureRatio", "TritonReplicasNotReady",
        "TritonHighTailLatency", "TritonModelNotLoaded",
    }  # fmt: skip
    for a in alerts:
        _walk(promql.parse(a["expr"]), f"alert {a['alert']}", set(), uses)

    # The HPA scales on a pods metric that prometheus-adapter computes from Triton's metrics.
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpas
    adapter = yaml.safe_load((CHART / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    rules = {r["name"]["as"]: r for r in adapter["rules"]["custom"]}
    for hpa in hpas:
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] != "Pods":
                continue
            name = metric["pods"]["metric"]["name"]
            assert name in rules, f"HPA metric {name} is not served by the prometheus-adapter rule"
            r = rules[name]
            where = f"HPA {hpa['metadata']['name']} ({name})"
            _walk(promql.parse(r["seriesQuery"]), where, set(r["resources"]["overrides"]), uses)
            query = r["metricsQuery"].replace(
                "<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod="p"'
            )
            _walk(promql.parse(query.replace("<<.GroupBy>>", "pod")), where, set(), uses)

    board = dashboard(docs)
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            _walk(promql.parse(_grafana(target["expr"])), f"panel {panel['title']!r}", set(), uses)
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert m, var["query"]
        _walk(promql.parse(m[1]), f"dashboard variable {var['name']}", {m[2]}, uses)

    monitor = one(docs, "ServiceMonitor")
    pod_labels = {
        re.sub(r"[^a-zA-Z0-9_]", "_", label) for label in monitor["spec"]["podTargetLabels"]
    }
    assert "color" in pod_labels
    return uses, OPERATOR_TARGET_LABELS | pod_labels


def test_every_metric_the_alerts_hpa_and_dashboard_use_is_exposed_with_its_labels(
    clean_run: Run,
) -> None:
    samples = exposed_samples(clean_run.metrics_text)
    labels: dict[str, set[str]] = defaultdict(set)
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for s in samples:
        labels[s.name] |= set(s.labels)
        for k, v in s.labels.items():
            values[(s.name, k)].add(v)
    served = {
        s.labels["model"]: s.value for s in samples if s.name == "nv_inference_request_success"
    }
    assert served["scorer"] == 150 and served["pipeline"] >= 147
    # The same series were there while the load ran (scraped every 50 ms meanwhile).
    during = exposed_samples(clean_run.metrics_under_load[len(clean_run.metrics_under_load) // 2])
    assert {s.name for s in during} >= {n for n in labels if n.startswith("nv_inference")}

    uses, scrape_labels = used_metrics()
    assert len(uses) >= 12
    problems = []
    for name, name_uses in sorted(uses.items()):
        if name in EXTERNAL:
            continue
        if name in GPU_ONLY:
            available = GPU_LABELS | scrape_labels
        elif name not in labels:
            problems.append(f"{name} (used by {name_uses[0].where}) is not in the scraped /metrics")
            continue
        else:
            available = labels[name] | scrape_labels
        for use in name_uses:
            if missing := use.labels - available:
                problems.append(f"{use.where}: {name} has no label(s) {sorted(missing)}")
            for label, value in use.values.items():
                if label in scrape_labels or name in GPU_ONLY:
                    continue
                if value not in values[(name, label)]:
                    problems.append(
                        f"{use.where}: {name}{{{label}={value!r}}} matches nothing "
                        f"(scraped: {sorted(values[(name, label)])})"
                    )
    assert not problems, "\n".join(problems)


def test_the_check_itself_catches_a_wrong_name_and_a_wrong_label() -> None:
    uses: dict[str, list[Use]] = defaultdict(list)
    _walk(
        promql.parse('sum by (modle) (rate(nv_inference_request_sucess{quantile="0.99"}[5m]))'),
        "x",
        set(),
        uses,
    )
    assert set(uses) == {"nv_inference_request_sucess"}
    (use,) = uses["nv_inference_request_sucess"]
    assert use.labels == {"modle", "quantile"} and use.values == {"quantile": "0.99"}


def test_cpu_metrics_used_by_the_dashboard_are_exposed(clean_run: Run) -> None:
    names = {s.name for s in exposed_samples(clean_run.metrics_text)}
    assert {"nv_cpu_utilization", "nv_inference_pending_request_count"} <= names
    # The chart turns latency summaries on: the p99 alert's series exist for every model.
    quantiles = {
        (s.labels["model"], s.labels["quantile"])
        for s in exposed_samples(clean_run.metrics_text)
        if s.name == "nv_inference_request_summary_us"
    }
    for model in ("scorer", "ranker", "featurizer", "pipeline"):
        assert (model, "0.99") in quantiles and (model, "0.5") in quantiles
