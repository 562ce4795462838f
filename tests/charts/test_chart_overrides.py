"""Per-color overrides: every pod setting can be set for one color without touching the other.

For every key a color accepts, the chart is rendered with and without a value set under one
color only: that color's Deployment must change (and show the value), while every object of the
other color (Deployment, HPA, PDB) stays byte-identical, so none of its pods restarts. Helm's own
engine renders (helm_python); nothing here needs a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import helm_python
import pytest
from charttools import (
    FULLNAME,
    by_kind,
    container,
    deployment,
    documents,
    env_of,
    merge,
    objects,
    pod_spec,
    render,
    render_error,
    scenario_values,
)

Check = Callable[[dict[str, Any]], bool]


def _triton(d: dict[str, Any]) -> dict[str, Any]:
    return container(d)


def _args(d: dict[str, Any]) -> list[str]:
    return list(container(d)["args"])


# key -> (scenario, color, value set under <color>.<key>, what the color's Deployment must show)
OVERRIDES: dict[str, tuple[str, str, Any, Check]] = {
    "replicas": ("blue-green-both-up", "blue", 2, lambda d: d["spec"]["replicas"] == 2),
    "imageTag": (
        "blue-green-both-up",
        "green",
        "24.12",
        lambda d: _triton(d)["image"] == "nvcr.io/nvidia/tritonserver:24.12-py3",
    ),
    "imageDigest": (
        "blue-green-both-up",
        "blue",
        "sha256:" + "a" * 64,
        lambda d: _triton(d)["image"].endswith(":24.09-py3@sha256:" + "a" * 64),
    ),
    "version": (
        "blue-green-both-up",
        "green",
        "2024.12.01",
        lambda d: (
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "2024.12.01"
        ),
    ),
    "podAnnotations": (
        "blue-green-both-up",
        "blue",
        {"example.com/owner": "search"},
        lambda d: d["spec"]["template"]["metadata"]["annotations"]["example.com/owner"] == "search",
    ),
    "modelRepository": (
        "blue-green-both-up",
        "green",
        {"uri": "s3://ml-models/triton/2024.12.01"},
        lambda d: "--model-repository=s3://ml-models/triton/2024.12.01" in _args(d),
    ),
    "image": (
        "blue-green-both-up",
        "blue",
        {"pullPolicy": "Always"},
        lambda d: _triton(d)["imagePullPolicy"] == "Always",
    ),
    "triton": (
        "blue-green-both-up",
        "green",
        {"grpc": {"maxConnectionAgeMs": 60000}, "extraArgs": ["--log-info=false"]},
        lambda d: (
            # 60 s + 10 % + the shared 10 s grace, which the deep merge keeps (the load shedder
            # applies the age; see test_chart_shedder.py for its config)
            d["metadata"]["annotations"]["triton-deploy/connection-drain-seconds"] == "76"
            and "--log-info=false" in _args(d)
        ),
    ),
    "resources": (
        "blue-green-both-up",
        "blue",
        {"limits": {"memory": "48Gi"}},
        lambda d: (
            _triton(d)["resources"]["limits"]["memory"] == "48Gi"
            and _triton(d)["resources"]["requests"]["cpu"] == "4"
        ),
    ),
    "shm": (
        "blue-green-both-up",
        "green",
        {"sizeLimit": "8Gi"},
        lambda d: (
            next(v for v in pod_spec(d)["volumes"] if v["name"] == "shm")["emptyDir"]["sizeLimit"]
            == "8Gi"
        ),
    ),
    "probes": (
        "blue-green-both-up",
        "blue",
        {"startup": {"failureThreshold": 180}},
        lambda d: (
            _triton(d)["startupProbe"]["failureThreshold"] == 180
            and _triton(d)["startupProbe"]["periodSeconds"] == 10
        ),
    ),
    "shutdown": (
        "blue-green-both-up",
        "green",
        {"endpointPropagationSeconds": 10},
        lambda d: _triton(d)["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "53"],
    ),
    "gpu": (
        "blue-green-both-up",
        "blue",
        {"count": 2},
        lambda d: _triton(d)["resources"]["limits"]["nvidia.com/gpu"] == "2",
    ),
    "modelSync": (
        "tensorrt-on-node",
        "blue",
        {"resources": {"limits": {"memory": "2Gi"}}},
        lambda d: container(d, "model-sync")["resources"]["limits"]["memory"] == "2Gi",
    ),
    "tensorrtOnNode": (
        "tensorrt-on-node",
        "green",
        {"trtexecPath": "/opt/tensorrt/bin/trtexec"},
        lambda d: (
            env_of(container(d, "build-plans"))["TRTEXEC"]["value"] == "/opt/tensorrt/bin/trtexec"
        ),
    ),
    "nodeSelector": (
        "blue-green-both-up",
        "blue",
        {"cloud.google.com/gke-nodepool": "l4"},
        lambda d: pod_spec(d)["nodeSelector"] == {"cloud.google.com/gke-nodepool": "l4"},
    ),
    "affinity": (
        "blue-green-both-up",
        "green",
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "nvidia.com/gpu.product",
                                    "operator": "In",
                                    "values": ["NVIDIA-H100"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
        lambda d: (
            "NVIDIA-H100" in str(pod_spec(d)["affinity"]["nodeAffinity"])
            and "podAntiAffinity" in pod_spec(d)["affinity"]
        ),
    ),
    "antiAffinity": (
        "blue-green-both-up",
        "blue",
        {"type": "soft"},
        lambda d: (
            "preferredDuringSchedulingIgnoredDuringExecution"
            in pod_spec(d)["affinity"]["podAntiAffinity"]
        ),
    ),
    "podLabels": (
        "blue-green-both-up",
        "green",
        {"team": "search"},
        lambda d: d["spec"]["template"]["metadata"]["labels"]["team"] == "search",
    ),
    "podSecurityContext": (
        "blue-green-both-up",
        "blue",
        {"runAsUser": 20001},
        lambda d: (
            pod_spec(d)["securityContext"]["runAsUser"] == 20001
            and pod_spec(d)["securityContext"]["fsGroup"] == 10001
        ),
    ),
    "securityContext": (
        "blue-green-both-up",
        "green",
        {"runAsUser": 20002},
        lambda d: (
            _triton(d)["securityContext"]["runAsUser"] == 20002
            and _triton(d)["securityContext"]["readOnlyRootFilesystem"] is True
        ),
    ),
    "extraEnv": (
        "blue-green-both-up",
        "blue",
        [{"name": "OMP_NUM_THREADS", "value": "4"}],
        lambda d: env_of(_triton(d))["OMP_NUM_THREADS"]["value"] == "4",
    ),
    "extraVolumes": (
        "blue-green-both-up",
        "green",
        [{"name": "cache", "emptyDir": {}}],
        lambda d: {"name": "cache", "emptyDir": {}} in pod_spec(d)["volumes"],
    ),
    "extraVolumeMounts": (
        "blue-green-both-up",
        "blue",
        [{"name": "tmp", "mountPath": "/var/cache/triton"}],
        lambda d: {"name": "tmp", "mountPath": "/var/cache/triton"} in _triton(d)["volumeMounts"],
    ),
    "imagePullSecrets": (
        "blue-green-both-up",
        "green",
        [{"name": "ngc-green"}],
        lambda d: pod_spec(d)["imagePullSecrets"] == [{"name": "ngc-green"}],
    ),
    "topologySpreadConstraints": (
        "blue-green-both-up",
        "blue",
        [
            {
                "maxSkew": 2,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
            }
        ],
        lambda d: (
            {
                t["topologyKey"]: (t["maxSkew"], t["whenUnsatisfiable"])
                for t in pod_spec(d)["topologySpreadConstraints"]
            }
            == {
                "kubernetes.io/hostname": (1, "ScheduleAnyway"),
                "topology.kubernetes.io/zone": (2, "DoNotSchedule"),
            }
        ),
    ),
    "tolerations": ("blue-green-both-up", "green", [], lambda d: "tolerations" not in pod_spec(d)),
    "runtimeClassName": (
        "blue-green-both-up",
        "blue",
        "nvidia",
        lambda d: pod_spec(d)["runtimeClassName"] == "nvidia",
    ),
    "priorityClassName": (
        "blue-green-both-up",
        "green",
        "inference-critical",
        lambda d: pod_spec(d)["priorityClassName"] == "inference-critical",
    ),
    "tmpSizeLimit": (
        "blue-green-both-up",
        "blue",
        "40Gi",
        lambda d: (
            next(v for v in pod_spec(d)["volumes"] if v["name"] == "tmp")["emptyDir"]["sizeLimit"]
            == "40Gi"
        ),
    ),
    "extraWritableDirs": (
        "blue-green-both-up",
        "green",
        ["/home/triton-server/.cache"],
        lambda d: any(
            m["mountPath"] == "/home/triton-server/.cache" for m in _triton(d)["volumeMounts"]
        ),
    ),
    "strategy": (
        "blue-green-both-up",
        "blue",
        {"type": "Recreate"},
        lambda d: d["spec"]["strategy"] == {"type": "Recreate"},
    ),
}


def _objects_of(rendered: dict[str, str], color: str) -> dict[tuple[str, str], str]:
    return {key: text for key, text in documents(rendered).items() if key[1].endswith(f"-{color}")}


def test_every_key_a_color_accepts_is_covered(chart: helm_python.Chart) -> None:
    schema = chart.schema
    assert schema is not None
    accepted = set(schema["definitions"]["color"]["properties"]) - {"enabled"}
    assert accepted == set(OVERRIDES), "add the new per-color key to OVERRIDES"


@pytest.mark.parametrize("key", sorted(OVERRIDES))
def test_a_value_set_for_one_color_leaves_the_other_byte_identical(
    chart: helm_python.Chart, key: str
) -> None:
    scenario, color, value, shows = OVERRIDES[key]
    other = "green" if color == "blue" else "blue"
    base_values = scenario_values(scenario)
    changed_values = merge(base_values, {color: {key: value}})
    if key == "modelRepository":  # the uri is replaced, the rest of the block merged
        changed_values[color]["modelRepository"] = merge(
            base_values[color]["modelRepository"], value
        )
    base = render(chart, base_values)
    changed = render(chart, changed_values)

    # The other color: every object byte-identical (its pods do not restart).
    assert _objects_of(base, other), f"no {other} objects in {scenario}"
    assert _objects_of(changed, other) == _objects_of(base, other)
    # This color: its Deployment shows the value.
    assert _objects_of(changed, color) != _objects_of(base, color)
    assert _shows(shows, deployment(objects(changed), color)), f"{color}.{key} did not take effect"
    assert not _shows(shows, deployment(objects(base), color)), "the check passes without it"


def _shows(check: Check, deploy: dict[str, Any]) -> bool:
    try:
        return check(deploy)
    except (KeyError, StopIteration):  # the field is absent: the value is not there
        return False


def test_shared_values_still_reach_both_colors(chart: helm_python.Chart) -> None:
    values = merge(
        scenario_values("blue-green-both-up"), {"resources": {"limits": {"memory": "40Gi"}}}
    )
    docs = objects(render(chart, values))
    for color in ("blue", "green"):
        assert container(deployment(docs, color))["resources"]["limits"]["memory"] == "40Gi"


def test_overrides_deep_merge_and_a_false_or_zero_override_wins(chart: helm_python.Chart) -> None:
    values = merge(
        scenario_values("blue-green-both-up"),
        {
            "extraEnv": [{"name": "A", "value": "shared"}, {"name": "B", "value": "shared"}],
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "blue": {
                # false and 0 are values, not "unset" (sprig's mergeOverwrite would drop them)
                "triton": {"strictReadiness": False, "log": {"verbose": 0}, "exitTimeoutSecs": 0},
                "extraEnv": [{"name": "B", "value": "blue"}, {"name": "C", "value": "blue"}],
                "nodeSelector": {"pool": "blue"},
            },
        },
    )
    values["triton"]["log"] = {"verbose": 2}
    docs = objects(render(chart, values))
    blue, green = deployment(docs, "blue"), deployment(docs, "green")
    assert "--strict-readiness=false" in _args(blue) and "--strict-readiness=true" in _args(green)
    assert "--log-verbose=0" in _args(blue) and "--log-verbose=2" in _args(green)
    assert "--exit-timeout-secs=0" in _args(blue)
    # Log format comes from the shared block for both (deep merge, not replacement).
    assert "--log-format=ISO8601" in _args(blue)
    # env merged by name: the shared A, blue's B in place of the shared one, blue's C added.
    names = [(e["name"], e.get("value")) for e in container(blue)["env"] if e["name"] in "ABC"]
    assert names == [("A", "shared"), ("B", "blue"), ("C", "blue")]
    assert pod_spec(blue)["nodeSelector"] == {"nvidia.com/gpu.present": "true", "pool": "blue"}
    assert pod_spec(green)["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


def test_a_bad_override_fails_naming_the_color(chart: helm_python.Chart) -> None:
    values = merge(
        scenario_values("blue-green-both-up"),
        {"green": {"triton": {"restrictedProtocols": {"protocols": ["health"]}}}},
    )
    assert 'must not contain "health" (green)' in render_error(chart, values)
    values = merge(
        scenario_values("blue-green-both-up"), {"blue": {"triton": {"grpc": {"maxAge": 1}}}}
    )
    message = render_error(chart, values)
    assert "/blue/triton/grpc" in message and "'maxAge' not allowed" in message


def test_any_key_of_triton_is_overridable_per_color(chart: helm_python.Chart) -> None:
    """`triton` and `<color>.triton` share one schema definition: a key added under triton
    (e.g. a future `trace` block) is accepted per color too, and deep-merged by the template."""
    schema = chart.schema
    assert schema is not None
    assert schema["properties"]["triton"]["allOf"][0] == {"$ref": "#/definitions/triton"}
    assert schema["definitions"]["color"]["properties"]["triton"] == {
        "$ref": "#/definitions/triton"
    }
    assert "required" not in schema["definitions"]["triton"]  # a partial override validates


def test_image_digest_pins_each_color(chart: helm_python.Chart) -> None:
    digest_a, digest_b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    values = merge(
        scenario_values("blue-green-both-up"),
        {
            "image": {"digest": digest_a},
            "blue": {"imageTag": "", "imageDigest": ""},
            "green": {"imageTag": "24.12", "imageDigest": digest_b},
        },
    )
    docs = objects(render(chart, values))
    assert (
        container(deployment(docs, "blue"))["image"]
        == f"nvcr.io/nvidia/tritonserver:24.10-py3@{digest_a}"
    )
    assert (
        container(deployment(docs, "green"))["image"]
        == f"nvcr.io/nvidia/tritonserver:24.12-py3@{digest_b}"
    )
    # A color with its own tag cannot inherit the shared tag's digest.
    values["green"]["imageDigest"] = ""
    message = render_error(chart, values)
    assert 'green.imageTag ("24.12") replaces image.tag, but image.digest pins' in message


def test_services_get_http_only_when_a_color_serves_it(chart: helm_python.Chart) -> None:
    base = scenario_values("blue-green-both-up")
    assert all(
        "http" not in {p["name"] for p in svc["spec"]["ports"]}
        for svc in by_kind(objects(render(chart, base)), "Service").values()
    )
    values = merge(base, {"blue": {"triton": {"http": {"mode": "full"}}}})
    docs = objects(render(chart, values))
    for svc in by_kind(docs, "Service").values():
        assert {p["name"] for p in svc["spec"]["ports"]} == {
            "grpc",
            "http",
            "metrics",
            "shed-metrics",  # the load shedder's exporter
        }
    assert "--http-port=8000" in _args(deployment(docs, "blue"))
    assert "--allow-http=false" in _args(deployment(docs, "green"))
    assert by_kind(docs, "Service")[FULLNAME]["spec"]["selector"]["color"] == "green"
