"""The chart refuses values that would cut traffic, and keeps capacity through disruptions.

- activeColor must name a color that runs pods;
- PodDisruptionBudgets protect serving capacity without blocking node drains;
- with the HPA on, an upgrade keeps the live replica count (helm/helm#12650), checked through
  Helm's own cluster-aware render (its real `lookup`) against kmock's Kubernetes API emulator;
- the preStop sleep outlasts every client connection, per color.
"""

from __future__ import annotations

import asyncio
from typing import Any

import helm_python
import kmock
import pytest
from charttools import (
    FULLNAME,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    by_kind,
    container,
    deployment,
    merge,
    objects,
    pod_spec,
    render,
    render_error,
    scenario_values,
)

SINGLE_COLOR = sorted(
    s for s in SCENARIOS if not scenario_values(s).get("green", {}).get("enabled")
)


# --- activeColor ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SINGLE_COLOR)
def test_active_color_must_be_enabled(chart: helm_python.Chart, scenario: str) -> None:
    message = render_error(chart, scenario_values(scenario) | {"activeColor": "green"})
    assert 'activeColor is "green" but green.enabled is false' in message
    assert "keep activeColor=blue" in message


def test_active_color_must_have_replicas(chart: helm_python.Chart) -> None:
    values = merge(scenario_values("blue-green-both-up"), {"green": {"replicas": 0}})
    message = render_error(chart, values)
    assert 'activeColor is "green" but green.replicas is 0' in message
    # The idle color may be scaled to zero (after a switch, once clients have moved).
    values = merge(scenario_values("blue-green-both-up"), {"blue": {"replicas": 0}})
    docs = objects(render(chart, values))
    assert deployment(docs, "blue")["spec"]["replicas"] == 0


# --- PodDisruptionBudget -------------------------------------------------------------------------


def _pdbs(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name.removeprefix(f"{FULLNAME}-"): pdb["spec"]
        for name, pdb in by_kind(objects(render(chart, values)), "PodDisruptionBudget").items()
    }


def test_pdb_protects_colors_with_two_or_more_replicas_only(chart: helm_python.Chart) -> None:
    # blue 1 replica, green 3: a single pod cannot be protected without blocking drains.
    pdbs = _pdbs(chart, scenario_values("blue-green-both-up"))
    assert set(pdbs) == {"green"}
    assert pdbs["green"]["maxUnavailable"] == 1
    assert pdbs["green"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdbs["green"]["selector"]["matchLabels"]["color"] == "green"
    pdbs = _pdbs(
        chart,
        merge(scenario_values("blue-green-both-up"), {"podDisruptionBudget": {"minAvailable": 2}}),
    )
    assert pdbs["green"]["minAvailable"] == 2 and "maxUnavailable" not in pdbs["green"]
    pdbs = _pdbs(
        chart,
        merge(
            scenario_values("blue-green-both-up"), {"podDisruptionBudget": {"minAvailable": "50%"}}
        ),
    )
    assert pdbs["green"]["minAvailable"] == "50%"


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (
            {"minAvailable": 3},
            "podDisruptionBudget.minAvailable (3) must be below green.replicas (3)",
        ),
        (
            {"maxUnavailable": 3},
            "podDisruptionBudget.maxUnavailable (3) must be below green.replicas (3)",
        ),
        ({"minAvailable": "100%"}, "minAvailable 100% would block every node drain"),
    ],
)
def test_pdb_that_blocks_drains_or_protects_nothing_fails(
    chart: helm_python.Chart, budget: dict[str, Any], expected: str
) -> None:
    values = merge(scenario_values("blue-green-both-up"), {"podDisruptionBudget": budget})
    assert expected in render_error(chart, values)


# --- HPA and the replica count across upgrades ---------------------------------------------------


def _hpa_values(**blue: Any) -> dict[str, Any]:
    return merge(
        scenario_values("s3"),
        {"autoscaling": {"enabled": True, "maxReplicas": 8}, "blue": {"replicas": 2, **blue}},
    )


def test_hpa_without_a_live_deployment_starts_at_its_minimum(chart: helm_python.Chart) -> None:
    docs = objects(render(chart, _hpa_values()))
    assert deployment(docs, "blue")["spec"]["replicas"] == 2
    hpa = by_kind(docs, "HorizontalPodAutoscaler")[f"{FULLNAME}-blue"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)


def _deployment_object(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
    }


@pytest.mark.parametrize(
    ("live", "autoscaling", "expected"),
    [
        (5, True, 5),  # what the HPA chose survives the upgrade
        (12, True, 8),  # clamped to maxReplicas
        (1, True, 2),  # and to minReplicas (<color>.replicas)
        (5, False, 2),  # without the HPA, the chart's value rules
    ],
)
def test_upgrade_keeps_the_replica_count_the_hpa_chose(
    chart: helm_python.Chart, live: int, autoscaling: bool, expected: int
) -> None:
    """Helm's cluster-aware render (helm_python.Config.render, its real `lookup`) against kmock's
    Kubernetes API emulator over HTTP, holding a live Deployment scaled by an HPA."""
    values = _hpa_values()
    values["autoscaling"]["enabled"] = autoscaling

    async def scenario() -> dict[str, str]:
        async with kmock.KubernetesEmulator() as api, kmock.Server(api):
            api.resources["apps/v1/deployments"] = kmock.ResourceInfo(
                kind="Deployment", namespaced=True, singular="deployment", verbs={"get", "list"}
            )
            reply = await api.post(
                f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                json=_deployment_object(f"{FULLNAME}-blue", live),
            )
            assert reply.status == 200

            def cluster_render() -> dict[str, str]:
                with helm_python.Config(kube_apiserver=str(api.url), namespace=NAMESPACE) as config:
                    return config.render(
                        chart, values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True
                    )

            return await asyncio.get_running_loop().run_in_executor(None, cluster_render)

    rendered = asyncio.run(scenario())
    docs = objects({k: v for k, v in rendered.items() if not k.endswith(".txt") and v.strip()})
    assert deployment(docs, "blue")["spec"]["replicas"] == expected
    assert deployment(docs, "green")["spec"]["replicas"] == 1  # no live object: the chart's value


# --- drain ---------------------------------------------------------------------------------------


def _pre_stop(deploy: dict[str, Any]) -> int:
    return int(container(deploy)["lifecycle"]["preStop"]["exec"]["command"][1])


def test_pre_stop_outlasts_client_connections_per_color(chart: helm_python.Chart) -> None:
    values = merge(
        scenario_values("blue-green-both-up"),
        {
            "blue": {
                "triton": {"grpc": {"maxConnectionAgeMs": 60000, "maxConnectionAgeGraceMs": 5000}}
            }
        },
    )
    docs = objects(render(chart, values))
    blue, green = deployment(docs, "blue"), deployment(docs, "green")
    # 60 s + 10 % jitter + 5 s grace = 71 s, + 5 s for the endpoints to drop the pod.
    assert _pre_stop(blue) == 76
    assert blue["metadata"]["annotations"]["triton-deploy/connection-drain-seconds"] == "71"
    assert pod_spec(blue)["terminationGracePeriodSeconds"] == 76 + 30 + 15
    # green keeps the shared 30 s + 10 % + 10 s = 43 s (+ 5).
    assert _pre_stop(green) == 48
    assert pod_spec(green)["terminationGracePeriodSeconds"] == 48 + 30 + 15


def test_without_max_connection_age_the_pre_stop_only_covers_endpoint_removal(
    chart: helm_python.Chart,
) -> None:
    values = merge(scenario_values("pvc"), {"triton": {"grpc": {"maxConnectionAgeMs": 0}}})
    values["shutdown"] = {"preStopSleepSeconds": None, "terminationGracePeriodSeconds": None}
    rendered = render(chart, values)
    deploy = deployment(objects(rendered), "blue")
    # endpoints (5 s), then what the load shedder still holds when it stops accepting: its
    # queue timeout (5 s; no connection-age grace without an age)
    assert _pre_stop(deploy) == 5 + 5
    assert (
        _pre_stop(
            deployment(
                objects(render(chart, merge(values, {"overload": {"enabled": False}}))), "blue"
            )
        )
        == 5
    )
    assert not [a for a in container(deploy)["args"] if a.startswith("--grpc-max-connection-age")]
    assert "WARNING: triton.grpc.maxConnectionAgeMs is 0" in rendered["NOTES.txt"]
