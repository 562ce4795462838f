"""The chart rendered with Helm's own engine (helm_python), for the tests that hold the chart's
metrics, alerts and dashboard against a real tritonserver."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import helm_python
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "triton-deploy"
RELEASE = "prod"
NAMESPACE = "ml"
BASE_VALUES: dict[str, Any] = {
    "triton": {"restrictedProtocols": {"existingSecret": "triton-admin-key"}},
    "blue": {"modelRepository": {"uri": "s3://models/triton/v1"}},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
    "autoscaling": {"enabled": True},
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm_python.Chart.load(CHART)
    out = chart.render(_merge(BASE_VALUES, values), name=RELEASE, namespace=NAMESPACE)
    docs: list[dict[str, Any]] = []
    for path, text in out.items():
        if path.endswith(".txt") or not text.strip():
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def triton_container(docs: list[dict[str, Any]], color: str) -> dict[str, Any]:
    deploy = one(docs, "Deployment", f"{RELEASE}-triton-deploy-{color}")
    return next(
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "tritonserver"
    )


def rendered_triton_args(values: dict[str, Any], color: str) -> list[str]:
    return list(triton_container(render(values), color)["args"])


def dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = one(docs, "ConfigMap", f"{RELEASE}-triton-deploy-dashboard")
    return json.loads(config_map["data"]["triton-deploy.json"])
