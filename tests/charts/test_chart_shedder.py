"""The load shedder sidecar: on by default, the configuration `tdeploy serve` runs (one
generator: runtime/shedder.py's render_config and sidecar_script, which the chart's
templates/_shedder.tpl must render byte for byte), and a termination order in which the shedder
stops accepting before Triton drains."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from charttools import FULLNAME, by_kind, container, deployment, merge, objects, render

from triton_deploy.runtime.shedder import render_config, sidecar_script

# the smallest values a real install needs (a repository and the admin Secret), nothing else
REQUIRED: dict[str, Any] = {
    "blue": {"modelRepository": {"uri": "s3://models/prod"}},
    "triton": {"restrictedProtocols": {"existingSecret": "triton-admin-key"}},
}


def _docs(chart: helm_python.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    return objects(render(chart, merge(REQUIRED, values)))


def _configmap(docs: list[dict[str, Any]], color: str = "blue") -> dict[str, str]:
    return dict(by_kind(docs, "ConfigMap")[f"{FULLNAME}-{color}-shedder"]["data"])


def test_a_default_render_has_the_shedder_sidecar_in_front_of_triton(
    chart: helm_python.Chart,
) -> None:
    docs = _docs(chart, {})
    deploy = deployment(docs, "blue")
    shedder = container(deploy, "shedder")
    triton = container(deploy, "tritonserver")
    # the official image, pinned by digest
    assert shedder["image"].startswith("haproxy:3.0.29-alpine@sha256:")
    assert len(shedder["image"].split("@sha256:")[1]) == 64
    # clients (the Services' targetPort "grpc") reach the shedder; Triton is behind it
    ports = {p["name"]: p["containerPort"] for p in shedder["ports"]}
    assert ports == {"grpc": 8001, "shed-metrics": 8404}
    assert {p["name"] for p in triton["ports"]} == {"triton-grpc", "metrics"}
    assert "--grpc-port=8011" in triton["args"]
    assert triton["readinessProbe"]["grpc"]["port"] == 8011
    assert triton["startupProbe"]["grpc"]["port"] == 8011
    assert triton["livenessProbe"]["tcpSocket"]["port"] == 8011
    assert shedder["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "shed-metrics"}
    service = by_kind(docs, "Service")[FULLNAME]
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "grpc": "grpc",
        "metrics": "metrics",
        "shed-metrics": "shed-metrics",
    }
    # the configuration comes from the ConfigMap, and a change of it restarts the pods
    volume = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == f"{FULLNAME}-blue-shedder"
    assert "triton-deploy/shedder-config" in deploy["spec"]["template"]["metadata"]["annotations"]
    assert shedder["command"] == ["sh", "/usr/local/etc/haproxy/run.sh"]


GRID = list(
    itertools.product(
        [(32, 32), (1, 0), (500, 2000)],  # maxInflight, maxQueued
        [(30000, 10000), (1500, 1000), (0, 0), (1234, 0)],  # max connection age, grace (ms)
        [5000, 250],  # queue timeout (ms)
    )
)


@pytest.mark.parametrize(("bounds", "age", "queue_ms"), GRID)
def test_the_chart_renders_exactly_what_render_config_and_sidecar_script_write(
    chart: helm_python.Chart, bounds: tuple[int, int], age: tuple[int, int], queue_ms: int
) -> None:
    inflight, queued = bounds
    values = {
        "overload": {"maxInflight": inflight, "maxQueued": queued, "queueTimeoutMs": queue_ms},
        "triton": {"grpc": {"maxConnectionAgeMs": age[0], "maxConnectionAgeGraceMs": age[1]}},
        "ports": {"grpc": 9001},
    }
    data = _configmap(_docs(chart, values))
    assert data["haproxy.cfg"] == render_config(
        listen=("0.0.0.0", 9001),
        upstream=("127.0.0.1", 8011),
        max_inflight=inflight,
        max_queued=queued,
        timeout_queue_s=queue_ms / 1000,
        metrics=("0.0.0.0", 8404),
        max_connection_age_ms=age[0],
        max_connection_age_grace_ms=age[1],
    )
    assert data["run.sh"] == sidecar_script("/usr/local/etc/haproxy/haproxy.cfg", age[0])


def test_each_color_gets_its_own_connection_age(chart: helm_python.Chart) -> None:
    values = {
        "green": {
            "enabled": True,
            "modelRepository": {"uri": "s3://models/next"},
            "triton": {"grpc": {"maxConnectionAgeMs": 60000}},
        }
    }
    docs = _docs(chart, values)
    assert "sleep 30 & wait" in _configmap(docs, "blue")["run.sh"]
    assert "sleep 60 & wait" in _configmap(docs, "green")["run.sh"]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing: .ci/system-deps")
def test_the_rendered_config_is_valid_for_haproxy(chart: helm_python.Chart, tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(_configmap(_docs(chart, {}))["haproxy.cfg"])
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    script = tmp_path / "run.sh"
    script.write_text(_configmap(_docs(chart, {}))["run.sh"])
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


def test_termination_order_the_shedder_stops_accepting_first_then_triton_drains(
    chart: helm_python.Chart,
) -> None:
    for values in ({}, {"overload": {"queueTimeoutMs": 60000}}):
        deploy = deployment(_docs(chart, values), "blue")
        shedder_sleep = int(
            container(deploy, "shedder")["lifecycle"]["preStop"]["exec"]["command"][1]
        )
        triton_sleep = int(
            container(deploy, "tritonserver")["lifecycle"]["preStop"]["exec"]["command"][1]
        )
        config = yaml.safe_load(yaml.safe_dump(values)) or {}
        queue_s = (config.get("overload", {}).get("queueTimeoutMs", 5000)) / 1000
        # the shedder soft-stops after the endpoints dropped the pod; everything it still holds
        # then (queued at most queue_s, in flight at most the grace) is done before Triton stops
        assert shedder_sleep == 5
        assert triton_sleep >= shedder_sleep + queue_s + 10
        grace = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > triton_sleep + 30


def test_off_renders_triton_alone_on_the_grpc_port(chart: helm_python.Chart) -> None:
    docs = _docs(chart, {"overload": {"enabled": False}})
    deploy = deployment(docs, "blue")
    names = [c["name"] for c in deploy["spec"]["template"]["spec"]["containers"]]
    assert names == ["tritonserver"]
    triton = container(deploy, "tritonserver")
    assert "--grpc-port=8001" in triton["args"]
    assert triton["readinessProbe"]["grpc"]["port"] == 8001
    assert "ConfigMap" not in {d["kind"] for d in docs}
    service = by_kind(docs, "Service")[FULLNAME]
    assert "shed-metrics" not in {p["name"] for p in service["spec"]["ports"]}


def test_the_schema_refuses_bad_overload_values(chart: helm_python.Chart) -> None:
    for bad in ({"maxInflight": 0}, {"queueTimeoutMs": "5s"}, {"unknown": 1}):
        with pytest.raises(Exception, match="overload"):
            _docs(chart, {"overload": bad})
