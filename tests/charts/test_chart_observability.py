"""The chart's tracing values, latency summaries, Grafana dashboard and alert rules.

Rendered with Helm's own engine (helm_python). The alert rules go through `promtool check rules`
and `promtool test rules` (Debian's prometheus package, installed by .ci/system-deps) on series
shaped like the ones a real tritonserver exposes (see tests/observability for the check of every
metric name and label against a live server).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import promql_parser
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "triton-deploy"
RELEASE = "prod"
NAMESPACE = "ml"
BASE: dict[str, Any] = {
    "triton": {"restrictedProtocols": {"existingSecret": "triton-admin-key"}},
    "blue": {"version": "v1", "modelRepository": {"uri": "s3://models/v1"}},
    "green": {"enabled": True, "modelRepository": {"uri": "s3://models/v2"}},
}


@pytest.fixture(scope="module")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def merged(override: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(BASE if base is None else base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(value, out[key])
        else:
            out[key] = value
    return out


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    out = chart.render(merged(values), name=RELEASE, namespace=NAMESPACE)
    return [
        d
        for path, text in out.items()
        if text.strip() and not path.endswith(".txt")
        for d in yaml.safe_load_all(text)
        if d
    ]


def render_error(chart: helm_python.Chart, values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmError) as excinfo:
        chart.render(merged(values), name=RELEASE, namespace=NAMESPACE)
    return str(excinfo.value)


def pod_spec(docs: list[dict[str, Any]], color: str) -> dict[str, Any]:
    (deploy,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(f"-{color}")
    ]
    return dict(deploy["spec"]["template"]["spec"])


def triton(docs: list[dict[str, Any]], color: str) -> dict[str, Any]:
    return next(c for c in pod_spec(docs, color)["containers"] if c["name"] == "tritonserver")


def trace_args(docs: list[dict[str, Any]], color: str) -> list[str]:
    return [a for a in triton(docs, color)["args"] if a.startswith("--trace-config")]


# --- tracing -------------------------------------------------------------------------------------


def test_tracing_is_off_by_default(chart: helm_python.Chart) -> None:
    docs = render(chart, {})
    for color in ("blue", "green"):
        assert trace_args(docs, color) == []
        assert "trace" not in {v["name"] for v in pod_spec(docs, color)["volumes"]}
        assert "POD_NAME" not in {e["name"] for e in triton(docs, color).get("env", [])}


def test_mode_triton_writes_each_colors_inference_log_into_an_emptydir(
    chart: helm_python.Chart,
) -> None:
    docs = render(
        chart,
        {"triton": {"trace": {"mode": "triton", "level": ["TIMESTAMPS", "TENSORS"], "rate": 1}}},
    )
    for color in ("blue", "green"):
        assert trace_args(docs, color) == [
            "--trace-config=mode=triton",
            "--trace-config=level=TIMESTAMPS",
            "--trace-config=level=TENSORS",
            "--trace-config=rate=1",
            "--trace-config=count=-1",
            # The color is in the file name: the inference log reader takes it from there.
            f"--trace-config=triton,file=/var/log/triton-trace/{color}.json",
            "--trace-config=triton,log-frequency=100",
        ]
        spec = pod_spec(docs, color)
        volume = next(v for v in spec["volumes"] if v["name"] == "trace")
        assert volume == {"name": "trace", "emptyDir": {"sizeLimit": "2Gi"}}
        mount = next(m for m in triton(docs, color)["volumeMounts"] if m["name"] == "trace")
        assert mount == {"name": "trace", "mountPath": "/var/log/triton-trace"}


def test_a_shared_claim_gets_one_folder_per_pod(chart: helm_python.Chart) -> None:
    docs = render(
        chart,
        {
            "triton": {
                "trace": {
                    "mode": "triton",
                    "file": {"existingClaim": "traces", "directory": "/traces/"},
                }
            }
        },
    )
    container = triton(docs, "blue")
    assert "--trace-config=triton,file=/traces/blue.json" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "trace")
    assert mount["subPathExpr"] == "$(POD_NAME)"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    volume = next(v for v in pod_spec(docs, "blue")["volumes"] if v["name"] == "trace")
    assert volume["persistentVolumeClaim"] == {"claimName": "traces"}


def test_mode_opentelemetry_names_the_service_color_and_version(chart: helm_python.Chart) -> None:
    docs = render(
        chart,
        {
            "triton": {
                "trace": {
                    "mode": "opentelemetry",
                    "rate": 0,
                    "opentelemetry": {
                        "url": "http://otel-collector.monitoring:4318/v1/traces",
                        "resource": {"deployment.environment": "prod"},
                        "scheduleDelayMs": 1000,
                    },
                }
            }
        },
    )
    assert trace_args(docs, "blue") == [
        "--trace-config=mode=opentelemetry",
        "--trace-config=level=TIMESTAMPS",
        "--trace-config=rate=0",
        "--trace-config=count=-1",
        "--trace-config=opentelemetry,url=http://otel-collector.monitoring:4318/v1/traces",
        f"--trace-config=opentelemetry,resource=service.name={RELEASE}-triton-deploy",
        "--trace-config=opentelemetry,resource=service.version=v1",
        "--trace-config=opentelemetry,resource=color=blue",
        "--trace-config=opentelemetry,resource=deployment.environment=prod",
        "--trace-config=opentelemetry,bsp_schedule_delay=1000",
    ]
    assert "--trace-config=opentelemetry,resource=color=green" in trace_args(docs, "green")
    env = {e["name"]: e for e in triton(docs, "blue")["env"]}
    assert env["OTEL_RESOURCE_ATTRIBUTES"]["value"] == (
        "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"
    )
    assert "trace" not in {v["name"] for v in pod_spec(docs, "blue")["volumes"]}


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        ({"mode": "on"}, "/triton/trace/mode"),
        ({"level": ["ALL"]}, "/triton/trace/level/0"),
        ({"rate": -1}, "/triton/trace/rate"),
        ({"file": {"directory": "traces"}}, "/triton/trace/file/directory"),
        ({"file": {"logFrequnecy": 10}}, "logFrequnecy"),
        ({"opentelemetry": {"url": "collector:4318"}}, "/triton/trace/opentelemetry/url"),
    ],
)
def test_the_schema_refuses_bad_trace_values(
    chart: helm_python.Chart, trace: dict[str, Any], message: str
) -> None:
    assert message in render_error(chart, {"triton": {"trace": trace}})


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        (
            {
                "mode": "opentelemetry",
                "level": ["TENSORS"],
                "opentelemetry": {"url": "http://c:4318/v1/traces"},
            },
            'blue: triton.trace.level TENSORS is not supported in mode "opentelemetry"',
        ),
        ({"mode": "opentelemetry"}, "blue: triton.trace.opentelemetry.url is required"),
        (
            {"mode": "triton", "rate": 0},
            'blue: triton.trace.rate 0 traces nothing in mode "triton"',
        ),
    ],
)
def test_trace_settings_triton_would_ignore_fail_the_install(
    chart: helm_python.Chart, trace: dict[str, Any], message: str
) -> None:
    assert message in render_error(chart, {"triton": {"trace": trace}})


def test_a_color_can_trace_on_its_own(chart: helm_python.Chart) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    color_keys = schema["definitions"]["color"]["properties"]
    if "triton" not in color_keys:
        pytest.skip("per-color `<color>.triton` values are not in the schema yet (chart, issue 10)")
    docs = render(chart, {"green": {"triton": {"trace": {"mode": "triton", "rate": 1}}}})
    assert trace_args(docs, "blue") == []
    assert "--trace-config=triton,file=/var/log/triton-trace/green.json" in trace_args(
        docs, "green"
    )


# --- latency summaries ---------------------------------------------------------------------------


def test_latency_summaries_are_on_for_the_p99_alert_and_dashboard(chart: helm_python.Chart) -> None:
    args = triton(render(chart, {}), "blue")["args"]
    assert "--metrics-config=summary_latencies=true" in args
    custom = triton(
        render(chart, {"triton": {"metrics": {"summaryQuantiles": "0.5:0.05,0.99:0.001"}}}), "blue"
    )["args"]
    assert "--metrics-config=summary_quantiles=0.5:0.05,0.99:0.001" in custom
    off = triton(render(chart, {"triton": {"metrics": {"enabled": False}}}), "blue")["args"]
    assert not [a for a in off if a.startswith("--metrics-config")]
    assert "/triton/metrics/summaryQuantiles" in render_error(
        chart, {"triton": {"metrics": {"summaryQuantiles": "p99"}}}
    )


# --- Grafana dashboard ---------------------------------------------------------------------------


def _dashboard(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (cm,) = [
        d for d in docs if d["kind"] == "ConfigMap" and "-shedder" not in d["metadata"]["name"]
    ]
    return cm, json.loads(cm["data"]["triton-deploy.json"])


def test_the_dashboard_is_optional_and_carries_the_sidecar_label(chart: helm_python.Chart) -> None:
    assert not [
        d
        for d in render(chart, {})
        if d["kind"] == "ConfigMap" and not d["metadata"]["name"].endswith("-shedder")
    ]
    cm, board = _dashboard(render(chart, {"metrics": {"grafanaDashboard": {"enabled": True}}}))
    assert cm["metadata"]["name"] == f"{RELEASE}-triton-deploy-dashboard"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["uid"] == "triton-deploy"
    cm, _ = _dashboard(
        render(
            chart,
            {
                "metrics": {
                    "grafanaDashboard": {
                        "enabled": True,
                        # Helm merges maps with the defaults: null drops the default label.
                        "labels": {"dashboards": "triton", "grafana_dashboard": None},
                        "annotations": {"grafana_folder": "Triton"},
                        "namespace": "monitoring",
                    }
                }
            },
        )
    )
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["dashboards"] == "triton"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Triton"}


def test_every_dashboard_panel_is_per_model_or_per_pod_and_color(chart: helm_python.Chart) -> None:
    _, board = _dashboard(render(chart, {"metrics": {"grafanaDashboard": {"enabled": True}}}))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "namespace", "job", "color", "model"}
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            used = set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used - variables)
            promql_parser.parse(expr.replace("$__rate_interval", "5m"))  # raises on bad PromQL
            assert 'color=~"$color"' in expr, panel["title"]
            assert "{{color}}" in target["legendFormat"], panel["title"]
            per_model = 'model=~"$model"' in expr
            assert per_model == ("{{model}}" in target["legendFormat"]), panel["title"]
            assert per_model or "{{pod}}" in target["legendFormat"] or "by (color)" in expr


# --- alert rules: promtool -----------------------------------------------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: .ci/system-deps unpacks it from Debian's prometheus package",
)


def rules_file(chart: helm_python.Chart, tmp_path: Path) -> Path:
    docs = render(chart, {"metrics": {"prometheusRule": {"enabled": True}}})
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    # Labels as Prometheus stores Triton's series scraped through the chart's ServiceMonitor.
    base = {
        "namespace": NAMESPACE,
        "job": RELEASE,
        "color": "blue",
        "pod": "prod-triton-deploy-blue-a",
    }
    text = ", ".join(f'{k}="{v}"' for k, v in (base | labels).items())
    return {"series": f"{name}{{{text}}}", "values": values}


@needs_promtool
def test_promtool_accepts_the_rendered_rules(chart: helm_python.Chart, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules_file(chart, tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts(chart: helm_python.Chart, tmp_path: Path) -> None:
    rules = rules_file(chart, tmp_path)
    model = {"model": "scorer", "version": "1"}
    pod_b = {"pod": "prod-triton-deploy-blue-b"}
    failing = {"severity": "critical", "namespace": NAMESPACE, "color": "blue", "model": "scorer"}
    tests = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                # 100 req/min succeed, 10 fail (reason BACKEND), queue 200 ms per request.
                "interval": "1m",
                "input_series": [
                    _series("nv_inference_request_success", "0+100x40", **model),
                    _series("nv_inference_request_failure", "0+10x40", reason="BACKEND", **model),
                    _series("nv_inference_request_failure", "0+0x40", reason="REJECTED", **model),
                    _series("nv_inference_queue_duration_us", "0+20000000x40", **model),
                    _series(
                        "nv_inference_request_summary_us", "750000x40", quantile="0.99", **model
                    ),
                    _series("up", "1x40"),
                ],
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "TritonHighFailureRatio", "exp_alerts": []},
                    {
                        "eval_time": "15m",
                        "alertname": "TritonHighFailureRatio",
                        "exp_alerts": [
                            {
                                "exp_labels": failing,
                                "exp_annotations": {
                                    "summary": "Triton inference requests fail",
                                    "description": "9.091% of the requests to model scorer on the "
                                    "blue color of prod fail (threshold 0.05).",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "TritonHighQueueTime",
                        "exp_alerts": [
                            {
                                "exp_labels": failing | {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "Triton requests wait too long in the queue",
                                    "description": "Model scorer on the blue color of prod queues "
                                    "requests for 200kµs on average (threshold 100000µs): add "
                                    "replicas or instances.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "TritonHighTailLatency",
                        "exp_alerts": [
                            {
                                "exp_labels": failing | {"severity": "warning"},
                                "exp_annotations": {
                                    "summary": "Triton requests are slow (p99)",
                                    "description": "The p99 request time of model scorer on the "
                                    "blue color of prod is 750kµs on its slowest pod (threshold "
                                    "500000µs).",
                                },
                            }
                        ],
                    },
                    {"eval_time": "30m", "alertname": "TritonModelNotLoaded", "exp_alerts": []},
                ],
            },
            {
                # Two blue pods are up, the model is loaded on one of them only.
                "interval": "1m",
                "input_series": [
                    _series("nv_inference_request_success", "0+100x40", **model),
                    _series("nv_inference_request_failure", "0+0x40", reason="BACKEND", **model),
                    _series("nv_inference_queue_duration_us", "0+1000x40", **model),
                    _series("up", "1x40"),
                    _series("up", "1x40", **pod_b),
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "TritonModelNotLoaded", "exp_alerts": []},
                    {
                        "eval_time": "30m",
                        "alertname": "TritonModelNotLoaded",
                        "exp_alerts": [
                            {
                                "exp_labels": failing,
                                "exp_annotations": {
                                    "summary": "A Triton model is not loaded on every pod",
                                    "description": "Model scorer is served by 1 pod(s) of the blue "
                                    "color of prod, fewer than the pods of that color being "
                                    "scraped: it failed to load or was unloaded on the others.",
                                },
                            }
                        ],
                    },
                    {"eval_time": "30m", "alertname": "TritonHighFailureRatio", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "TritonHighQueueTime", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "TritonHighTailLatency", "exp_alerts": []},
                ],
            },
        ],
    }
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False, allow_unicode=True))
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
