"""The Helm chart charts/triton-deploy, rendered offline with Helm's own engine (helm_python).

No cluster here: every object is validated against the OpenAPI schemas of a pinned Kubernetes
version (kubernetes-validate, strict), and the prometheus-operator objects against the minimal
schemas below. The blue/green contract is checked on the rendered output: flipping activeColor
changes the two Services and nothing else.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from charttools import (
    CHART,
    FULLNAME,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    all_containers,
    by_kind,
    container,
    deployment,
    flag,
    merge,
    objects,
    render,
    render_error,
    scenario_values,
)
from gatewayapi import validate_grpcroute


def both_colors_have_pods(values: dict[str, Any]) -> bool:
    return all(
        values.get(c, {}).get("enabled") and values[c].get("replicas", 1) > 0
        for c in ("blue", "green")
    )


BOTH_UP = sorted(s for s in SCENARIOS if both_colors_have_pods(scenario_values(s)))


# Minimal schemas for the two prometheus-operator CRDs (not in Kubernetes' OpenAPI): exactly the
# fields the chart uses, unknown fields refused, so a misspelt field fails here.
_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "properties": {"matchLabels": {"type": "object"}},
                        "additionalProperties": False,
                    },
                    "namespaceSelector": {
                        "type": "object",
                        "properties": {
                            "matchNames": {"type": "array", "items": {"type": "string"}}
                        },
                        "additionalProperties": False,
                    },
                    "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["port"],
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                            },
                        },
                    },
                },
            },
        },
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["groups"],
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "rules"],
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "rules": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["alert", "expr"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "alert": {"type": "string", "pattern": "^[A-Za-z]+$"},
                                            "expr": {"type": "string", "minLength": 1},
                                            "for": _DURATION,
                                            "labels": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                            "annotations": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


# --- lint, render, validate ----------------------------------------------------------------------


def test_every_required_scenario_exists() -> None:
    assert set(SCENARIOS) >= {
        "gpu",
        "cpu-staging",
        "s3",
        "pvc",
        "tensorrt-on-node",
        "blue-green-both-up",
    }


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_lints_clean(scenario: str) -> None:
    report = helm_python.lint(
        CHART,
        scenario_values(scenario),
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems
    assert not report["errors"], report["errors"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_objects_are_valid_kubernetes(chart: helm_python.Chart, scenario: str) -> None:
    docs = objects(render(chart, scenario_values(scenario)))
    assert docs
    for doc in docs:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        key = (doc["apiVersion"], doc["kind"])
        if key == ("gateway.networking.k8s.io/v1", "GRPCRoute"):
            validate_grpcroute(doc)  # the upstream CRD, vendored (gatewayapi.py)
            continue
        if key in CRD_SCHEMAS:
            jsonschema.validate(doc, CRD_SCHEMAS[key])
            continue
        try:
            used = kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{scenario}: {what} is invalid at {path}: {e.message}")
        assert used == "1.30", f"validated {what} against Kubernetes {used}, not the pinned 1.30"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_shared_invariants(chart: helm_python.Chart, scenario: str) -> None:
    values = scenario_values(scenario)
    docs = objects(render(chart, values))
    deployments = by_kind(docs, "Deployment")
    assert deployments
    for deploy in deployments.values():
        pod = deploy["spec"]["template"]["spec"]
        triton = container(deploy)
        args = triton["args"]
        # $(VAR) in args is only expanded by the kubelet when VAR is defined in the container.
        env_names = {e["name"] for e in triton.get("env", [])}
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", " ".join(args)):
            assert ref in env_names, f"$({ref}) in args but no env var {ref}"
        # Shutdown: preStop outlasts every client connection (max age + 10 % jitter + grace),
        # and the grace period covers the preStop sleep plus Triton's exit timeout.
        pre_stop = int(triton["lifecycle"]["preStop"]["exec"]["command"][1])
        if any(c["name"] == "shedder" for c in pod["containers"]):
            # the load shedder ages the clients' connections (its ConfigMap; Triton gets none)
            assert not [a for a in args if a.startswith("--grpc-max-connection-age")]
            name = f"{deploy['metadata']['name']}-shedder"
            config = by_kind(docs, "ConfigMap")[name]["data"]["haproxy.cfg"]
            numbers = dict(
                re.findall(r"^    (close-spread-time|hard-stop-after) (\d+)ms$", config, re.M)
            )
            queue_ms = int(re.search(r"timeout queue (\d+)ms", config).group(1))  # type: ignore[union-attr]
            age_ms = int(numbers["close-spread-time"]) * 10
            grace_ms = int(numbers["hard-stop-after"]) - queue_ms
        else:
            age_ms = int(flag(args, "--grpc-max-connection-age"))
            grace_ms = int(flag(args, "--grpc-max-connection-age-grace"))
        assert age_ms > 0  # blue/green switches reach long-lived gRPC clients
        assert pre_stop >= (age_ms * 1.1 + grace_ms) / 1000
        drain = int(deploy["metadata"]["annotations"]["triton-deploy/connection-drain-seconds"])
        assert drain >= (age_ms * 1.1 + grace_ms) / 1000 > drain - 1
        exit_timeout = int(flag(args, "--exit-timeout-secs"))
        assert pod["terminationGracePeriodSeconds"] > pre_stop + exit_timeout
        # Probes: the kubelet's gRPC probe (grpc.health.v1) for startup and readiness; liveness
        # does not follow readiness.
        # (Triton's own port: behind the load shedder, "grpc" is the shedder's)
        grpc_port = int(flag(args, "--grpc-port"))
        assert grpc_port in {p["containerPort"] for p in triton["ports"]}
        assert triton["startupProbe"]["grpc"] == {"port": grpc_port}
        assert triton["readinessProbe"]["grpc"] == {"port": grpc_port}
        if "--allow-http=false" in args:
            assert triton["livenessProbe"]["tcpSocket"] == {"port": grpc_port}
            assert "http" not in {p["name"] for p in triton["ports"]}
        else:
            assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        # /dev/shm is memory-backed with an explicit size.
        shm = next(v for v in pod["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"]
        assert {"name": "shm", "mountPath": "/dev/shm"} in triton["volumeMounts"]
        # Hardened containers with a high UID, each with a writable /tmp under the read-only root.
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] >= 10000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["readOnlyRootFilesystem"] is True
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), c["name"]
        # Spread over nodes and zones, counting only this color's pods.
        color = deploy["spec"]["selector"]["matchLabels"]["color"]
        spread = {t["topologyKey"]: t for t in pod["topologySpreadConstraints"]}
        assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        for constraint in spread.values():
            assert constraint["labelSelector"]["matchLabels"]["color"] == color
            assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    for svc in by_kind(docs, "Service").values():
        ports = {p["name"]: p for p in svc["spec"]["ports"]}
        assert ports["grpc"]["port"] == 8001 and ports["grpc"]["appProtocol"] == "grpc"
        assert ports["metrics"]["port"] == 8002
        assert "http" not in ports  # no scenario asks for HTTP


# --- blue/green ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", BOTH_UP)
def test_services_select_active_and_preview_color(chart: helm_python.Chart, scenario: str) -> None:
    for active, preview in (("blue", "green"), ("green", "blue")):
        values = scenario_values(scenario) | {"activeColor": active}
        services = by_kind(objects(render(chart, values)), "Service")
        assert services[FULLNAME]["spec"]["selector"]["color"] == active
        assert services[f"{FULLNAME}-preview"]["spec"]["selector"]["color"] == preview


@pytest.mark.parametrize("scenario", BOTH_UP)
def test_switching_color_changes_only_the_services(chart: helm_python.Chart, scenario: str) -> None:
    blue = render(chart, scenario_values(scenario) | {"activeColor": "blue"})
    green = render(chart, scenario_values(scenario) | {"activeColor": "green"})
    assert blue.keys() == green.keys()
    changed = {path for path in blue if blue[path] != green[path]}
    # NOTES.txt is printed, not applied; everything applied but the Services is byte-identical,
    # so no pod template changes and no pod of either color restarts. With the gateway on, the
    # GRPCRoute's weights follow too (test_chart_gateway.py checks that only they change).
    gateway = (
        {"gateway.yaml"} if scenario_values(scenario).get("gateway", {}).get("enabled") else set()
    )
    assert changed == {"service.yaml", "NOTES.txt"} | gateway
    blue_svcs = by_kind(objects({"s": blue["service.yaml"]}), "Service")
    green_svcs = by_kind(objects({"s": green["service.yaml"]}), "Service")
    for name, svc in blue_svcs.items():
        other = copy.deepcopy(green_svcs[name])
        other["spec"]["selector"]["color"] = svc["spec"]["selector"]["color"]
        assert other == svc, f"{name} differs in more than its color selector"


def test_both_colors_keep_their_own_image_version_and_replicas(chart: helm_python.Chart) -> None:
    docs = objects(render(chart, scenario_values("blue-green-both-up")))
    blue, green = deployment(docs, "blue"), deployment(docs, "green")
    assert container(blue)["image"] == "nvcr.io/nvidia/tritonserver:24.09-py3"
    assert container(green)["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert blue["spec"]["replicas"] == 1 and green["spec"]["replicas"] == 3
    for deploy, color in ((blue, "blue"), (green, "green")):
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert labels["color"] == color
        assert deploy["spec"]["selector"]["matchLabels"]["color"] == color
    assert blue["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == (
        "2024.10.01"
    )


def test_anti_affinity_keeps_colors_apart_and_keeps_user_affinity(
    chart: helm_python.Chart,
) -> None:
    docs = objects(render(chart, scenario_values("blue-green-both-up")))
    for color, other in (("blue", "green"), ("green", "blue")):
        affinity = deployment(docs, color)["spec"]["template"]["spec"]["affinity"]
        assert "nodeAffinity" in affinity
        (term,) = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["labelSelector"]["matchLabels"]["color"] == other
        assert term["topologyKey"] == "kubernetes.io/hostname"


def test_notes_tell_which_color_is_active_and_how_to_switch(chart: helm_python.Chart) -> None:
    notes = render(chart, scenario_values("blue-green-both-up"))["NOTES.txt"]
    assert "ACTIVE color: green" in notes and "IDLE color:   blue" in notes
    assert (
        f"helm upgrade {RELEASE} ./charts/triton-deploy -n {NAMESPACE} --reuse-values --set activeColor=blue"
        in notes
    )
    assert "helm rollback" not in notes  # flips to a color that may have no pods
    assert "at least 43 s" in notes  # 30000 ms max connection age + 10 % jitter + 10000 ms grace
    assert f"helm test {RELEASE} -n {NAMESPACE}" in notes
    # Both colors' repositories and credentials are named.
    assert notes.count("credentials from Secret model-store-aws") == 2
    assert "blue runs 1 replica, so it has no PodDisruptionBudget" in notes


def test_helm_test_pod_checks_the_active_service_and_the_preview_only_with_pods(
    chart: helm_python.Chart,
) -> None:
    def addresses(values: dict[str, Any]) -> list[str]:
        (pod,) = objects({"t": render(chart, values)["tests/test-health.yaml"]})
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        command = pod["spec"]["containers"][0]["command"]
        assert command[:2] == ["sh", "-c"] and command[3] == "grpc-health"
        return list(command[4:])

    both = scenario_values("blue-green-both-up")
    assert addresses(both) == [f"{FULLNAME}:8001", f"{FULLNAME}-preview:8001"]
    # The idle color scaled to 0 or disabled: the preview Service selects nothing, no check.
    assert addresses(merge(both, {"blue": {"replicas": 0}})) == [f"{FULLNAME}:8001"]
    assert addresses(merge(both, {"blue": {"enabled": False}})) == [f"{FULLNAME}:8001"]
    assert addresses(scenario_values("pvc")) == [f"{FULLNAME}:8001"]


# --- GPU, CPU-only, repositories -----------------------------------------------------------------


def test_gpu_scenario_requests_gpus_tolerates_taint_and_sizes_shm(chart: helm_python.Chart) -> None:
    docs = objects(render(chart, scenario_values("gpu")))
    deploy = deployment(docs, "blue")
    pod = deploy["spec"]["template"]["spec"]
    triton = container(deploy)
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert triton["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["priorityClassName"] == "inference-critical"
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert "--allow-gpu-metrics=true" in triton["args"]
    assert "--model-repository=gs://ml-models/triton/2024.11.20-r1" in triton["args"]
    env = {e["name"]: e for e in triton["env"]}
    assert env["GOOGLE_APPLICATION_CREDENTIALS"]["value"] == "/var/run/secrets/gcs/key.json"
    assert {v["name"] for v in pod["volumes"]} >= {"gcs-key"}
    # HPA owns the replica count; <color>.replicas is its minimum, rendered while no live
    # Deployment exists (offline render: lookup is empty).
    assert deploy["spec"]["replicas"] == 2
    hpa = by_kind(docs, "HorizontalPodAutoscaler")[f"{RELEASE}-triton-deploy-blue"]
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 8
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "triton_queue_time_us_per_request"


def test_cpu_staging_requests_no_gpu_and_hides_gpus(chart: helm_python.Chart) -> None:
    rendered = render(chart, scenario_values("cpu-staging"))
    assert "nvidia.com/gpu" not in "".join(rendered.values())
    deploy = deployment(objects(rendered), "blue")
    triton = container(deploy)
    assert "tolerations" not in deploy["spec"]["template"]["spec"]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in triton["env"]
    assert "--allow-gpu-metrics=false" in triton["args"]
    mount = next(m for m in triton["volumeMounts"] if m["name"] == "model-repository")
    assert mount == {
        "name": "model-repository",
        "mountPath": "/models",
        "subPath": "repository",
        "readOnly": True,
    }
    hpa = by_kind(objects(rendered), "HorizontalPodAutoscaler")[f"{RELEASE}-triton-deploy-blue"]
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]


def test_s3_reads_in_place_with_credentials_from_secrets(chart: helm_python.Chart) -> None:
    docs = objects(render(chart, scenario_values("s3")))
    for color, uri in (
        ("blue", "s3://ml-models/triton/build-41"),
        ("green", "s3://ml-models/triton/build-42"),
    ):
        triton = container(deployment(docs, color))
        assert f"--model-repository={uri}" in triton["args"]
        assert triton["envFrom"] == [{"secretRef": {"name": "model-store-aws"}}]
        assert "initContainers" not in deployment(docs, color)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in container(deployment(docs, "blue"))["env"]}
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "model-store-aws-session",
        "key": "token",
    }


def test_pvc_repository_and_explicit_model_control(chart: helm_python.Chart) -> None:
    deploy = deployment(objects(render(chart, scenario_values("pvc"))), "blue")
    pod = deploy["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "model-repository")
    assert vol["persistentVolumeClaim"] == {
        "claimName": "triton-model-repository",
        "readOnly": True,
    }
    args = container(deploy)["args"]
    assert "--model-repository=/models" in args
    assert "--model-control-mode=explicit" in args and "--load-model=*" in args
    assert pod["terminationGracePeriodSeconds"] == 120
    assert container(deploy)["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "60"]
    assert (
        "--grpc-restricted-protocol=model-repository,shared-memory,model-config:x-admin-token=$(RESTRICTED_KEY_VALUE)"
        in args
    )
    # No HTTP listener by default, so no HTTP restriction either.
    assert "--allow-http=false" in args
    assert not [a for a in args if a.startswith(("--http-restricted-api", "--http-port"))]


def test_tensorrt_on_node_builds_plans_before_the_server(chart: helm_python.Chart) -> None:
    docs = objects(render(chart, scenario_values("tensorrt-on-node")))
    # blue: sync from S3 into the emptyDir, verify it against its manifest, then build plans,
    # in that order.
    blue = deployment(docs, "blue")
    pod = blue["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == [
        "model-sync",
        "verify-repository",
        "build-plans",
    ]
    sync = pod["initContainers"][0]
    assert sync["command"][:3] == ["aws", "s3", "sync"]
    assert {"name": "MODEL_REPOSITORY_URI", "value": "s3://ml-models/triton/trt-1"} in sync["env"]
    assert sync["envFrom"] == [{"secretRef": {"name": "model-store-aws"}}]
    build = pod["initContainers"][2]
    assert build["image"] == container(blue)["image"]  # same TensorRT as the server
    assert "sh /models/build_plans.sh /models /plan-cache" in build["command"][2]
    assert {"name": "TRTEXEC", "value": "/usr/src/tensorrt/bin/trtexec"} in build["env"]
    assert build["resources"]["limits"]["nvidia.com/gpu"] == "1"
    mounts = {m["name"]: m for m in build["volumeMounts"]}
    assert "readOnly" not in mounts["model-repository"] and "readOnly" not in mounts["plan-cache"]
    server_mounts = {m["name"]: m for m in container(blue)["volumeMounts"]}
    assert server_mounts["plan-cache"] == {
        "name": "plan-cache",
        "mountPath": "/plan-cache",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["model-repository"]
    assert volumes["plan-cache"]["persistentVolumeClaim"] == {"claimName": "tensorrt-plan-cache"}
    # green: a writable PVC sub-path, its own image tag for both init and server.
    green = deployment(docs, "green")
    pod = green["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["verify-repository", "build-plans"]
    assert pod["initContainers"][1]["image"] == "nvcr.io/nvidia/tritonserver:24.12-py3"
    assert {m["name"]: m for m in pod["initContainers"][1]["volumeMounts"]}["model-repository"][
        "subPath"
    ] == "trt-2"


# --- values that must fail -----------------------------------------------------------------------


def _pvc() -> dict[str, Any]:
    return scenario_values("pvc")


def test_schema_rejects_a_bad_color(chart: helm_python.Chart) -> None:
    message = render_error(chart, _pvc() | {"activeColor": "purple"})
    assert "/activeColor" in message and "'blue', 'green'" in message


def test_schema_rejects_negative_replicas(chart: helm_python.Chart) -> None:
    values = _pvc()
    values["blue"]["replicas"] = -1
    message = render_error(chart, values)
    assert "/blue/replicas" in message and "minimum" in message


@pytest.mark.parametrize(
    ("path", "key"),
    [((), "activeColour"), (("blue",), "replica"), (("triton", "grpc"), "maxConnectionAge")],
)
def test_schema_rejects_an_unknown_key(
    chart: helm_python.Chart, path: tuple[str, ...], key: str
) -> None:
    values = _pvc()
    block = values
    for part in path:
        block = block.setdefault(part, {})
    block[key] = 1
    message = render_error(chart, values)
    assert f"'{key}' not allowed" in message
    assert f"at '{''.join('/' + p for p in path)}'" in message


def test_schema_refuses_literal_credentials(chart: helm_python.Chart) -> None:
    values = _pvc()
    values["blue"]["modelRepository"]["credentials"] = {
        "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2"}]
    }
    message = render_error(chart, values)
    assert "/blue/modelRepository/credentials/env/0" in message
    assert "'value' not allowed" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"tensorrtOnNode": {"enabled": True}},
            "blue.modelRepository.pvc.readOnly is true",
        ),
        (
            {
                "tensorrtOnNode": {"enabled": True},
                "blue": {"modelRepository": {"source": "objectStorage", "uri": "s3://b/p"}},
            },
            'blue.modelRepository.source is "objectStorage"',
        ),
        (
            {"tensorrtOnNode": {"enabled": True}, "gpu": {"enabled": False}},
            "tensorrtOnNode.enabled needs a GPU",
        ),
        (
            {"shutdown": {"preStopSleepSeconds": 60, "terminationGracePeriodSeconds": 80}},
            "blue: shutdown.terminationGracePeriodSeconds (80) must be greater than the preStop sleep + triton.exitTimeoutSecs (90)",
        ),
        (
            {"shutdown": {"preStopSleepSeconds": 20, "terminationGracePeriodSeconds": None}},
            "blue: shutdown.preStopSleepSeconds (20) must be at least 48",
        ),
        (
            {"triton": {"restrictedProtocols": {"existingSecret": ""}}},
            "triton.restrictedProtocols.existingSecret is required",
        ),
        (
            {"triton": {"restrictedProtocols": {"protocols": ["health", "model-repository"]}}},
            'must not contain "health"',
        ),
        (
            {"green": {"enabled": True}},
            "green.modelRepository.uri is required",
        ),
        (
            {"blue": {"modelRepository": {"source": "sync", "uri": "as://acct/models/r1"}}},
            "set modelSync.command",
        ),
        (
            {"blue": {"enabled": False}},
            "enable at least one color",
        ),
    ],
)
def test_templates_fail_with_a_clear_message(
    chart: helm_python.Chart, change: dict[str, Any], expected: str
) -> None:
    assert expected in render_error(chart, merge(_pvc(), change))


def test_defaults_alone_fail_naming_what_is_required(chart: helm_python.Chart) -> None:
    assert "triton.restrictedProtocols.existingSecret is required" in render_error(chart, {})
    message = render_error(
        chart, {"triton": {"restrictedProtocols": {"existingSecret": "triton-admin-key"}}}
    )
    assert "blue.modelRepository.uri is required" in message


# --- secrets -------------------------------------------------------------------------------------

_SECRETISH = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_secret_value_in_any_manifest(chart: helm_python.Chart, scenario: str) -> None:
    rendered = render(chart, scenario_values(scenario))
    docs = objects(rendered)
    # The only ConfigMaps the chart makes are the Grafana dashboard (JSON) and the load
    # shedder's configuration (HAProxy config and script): no credentials.
    dashboard = f"{RELEASE}-triton-deploy-dashboard"
    assert not [
        d
        for d in docs
        if d["kind"] == "Secret"
        or (
            d["kind"] == "ConfigMap"
            and d["metadata"]["name"] != dashboard
            and not d["metadata"]["name"].endswith("-shedder")
        )
    ]
    for d in docs:
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-shedder"):
            assert set(d["data"]) == {"haproxy.cfg", "run.sh"}
    for c in all_containers(docs):
        for env in c.get("env", []):
            if "value" in env and _SECRETISH.search(env["name"]):
                # Only a file path into a mounted Secret volume is allowed as a literal.
                assert env["value"].startswith("/var/run/secrets/"), (c["name"], env)
        for arg in c.get("args", []) + c.get("command", []):
            if "restricted" in arg:
                assert arg.endswith("=$(RESTRICTED_KEY_VALUE)"), arg
        for env in c.get("env", []):
            if env["name"] == "RESTRICTED_KEY_VALUE":
                assert set(env) == {"name", "valueFrom"}
                assert set(env["valueFrom"]) == {"secretKeyRef"}
    text = "".join(rendered.values())
    assert "hunter2" not in text and "aws_secret_access_key" not in text.lower()


# --- chart hygiene -------------------------------------------------------------------------------


def test_values_file_links_the_schema_and_documents_every_key() -> None:
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    undocumented = []

    def has_doc_comment(key: yaml.Node) -> bool:
        i = key.start_mark.line - 1
        while i >= 0 and lines[i].lstrip().startswith("#"):
            if lines[i].strip().startswith("# --"):
                return True
            i -= 1
        return False

    def walk(node: yaml.Node, path: str, documented: bool) -> None:
        # helm-docs semantics: a value is documented by a "# --" comment above its own key or
        # above an enclosing key that documents the block as a whole (e.g. `resources`); plain
        # parent blocks need no comment of their own.
        for key, value in node.value:
            here = f"{path}.{key.value}" if path else key.value
            doc = documented or has_doc_comment(key)
            if isinstance(value, yaml.MappingNode) and value.value:
                walk(value, here, doc)
            elif not doc:
                undocumented.append(here)

    walk(yaml.compose(text), "", False)
    assert not undocumented, f"values without a '# --' comment: {undocumented}"


def test_schema_is_draft07_and_closed_on_the_charts_own_blocks(chart: helm_python.Chart) -> None:
    schema = chart.schema
    assert schema is not None
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    own_blocks = [
        "image",
        "modelSync",
        "tensorrtOnNode",
        "gpu",
        "triton",
        "ports",
        "probes",
        "shutdown",
        "shm",
        "antiAffinity",
        "serviceAccount",
        "podDisruptionBudget",
        "networkPolicy",
        "metrics",
        "autoscaling",
        "tests",
    ]
    for block in own_blocks:
        assert _resolve(schema, schema["properties"][block])["additionalProperties"] is False, block
    assert schema["definitions"]["color"]["additionalProperties"] is False
    # Every value in values.yaml is described by the schema (the defaults validate).
    chart.validate_schema(yaml.safe_load((CHART / "values.yaml").read_text()))


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind a node that is a $ref, or an allOf of a $ref and an overlay."""
    if "allOf" in node:
        node = node["allOf"][0]
    if "$ref" in node:
        node = schema["definitions"][node["$ref"].removeprefix("#/definitions/")]
    return node


def test_long_release_names_are_truncated_to_63_characters(chart: helm_python.Chart) -> None:
    release = "a-very-long-release-name-for-the-inference-platform-x"  # 53 characters
    values = scenario_values("blue-green-both-up")
    values["metrics"] = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    values["autoscaling"] = {"enabled": True}
    values["networkPolicy"] = {"enabled": True}
    docs = objects(render(chart, values, release=release))
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert len(names) == len(docs), "two objects of one kind share a name"
    dns1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    for doc in docs:
        name = doc["metadata"]["name"]
        assert len(name) <= 63, name
        assert dns1035.match(name), name
    full = f"{release}-triton-deploy"[:55].rstrip("-")
    assert set(by_kind(docs, "Service")) == {full, f"{full}-preview"}
    assert set(by_kind(docs, "Deployment")) == {f"{full}-blue", f"{full}-green"}


def test_helpers_are_named_and_commented() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    for name in ("name", "fullname", "labels", "selectorLabels"):
        match = re.search(r"\*/\}\}\n\{\{- define \"triton-deploy\." + name + r"\" -\}\}", helpers)
        assert match, f"triton-deploy.{name} missing or without a comment above its define"
