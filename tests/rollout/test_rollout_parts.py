"""The rollout driver's parts, without tritonservers: metrics windows, the verdicts, what an
upgrade changes (on the real chart, rendered by Helm's engine), options, the Lease lock and the
record (on kmock's Kubernetes emulator over HTTP)."""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from harness import BASE_VALUES, CHART, NAMESPACE, RELEASE, TDEPLOY, Emulator

from triton_deploy.rollout import (
    CheckStatus,
    Helm,
    HelmError,
    LockHeld,
    RecordStore,
    ReleaseObjects,
    RolloutLock,
    RolloutRecord,
    RolloutUsageError,
    Target,
    lease_state,
    manifest_changes,
    parse_duration,
    parse_triton_metrics,
    validate_target,
    window_stats,
)
from triton_deploy.rollout._analysis import evaluate_window
from triton_deploy.rollout._record import now

# The shape of Triton 2.51's /metrics (copied from a local server, trimmed).
METRICS = """\
# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="tiny",version="2"}} {ok}
nv_inference_request_success{{model="other",version="1"}} 10
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="tiny",reason="OTHER",version="2"}} 0
nv_inference_request_failure{{model="tiny",reason="BACKEND",version="2"}} {failed}
nv_inference_request_failure{{model="other",reason="BACKEND",version="1"}} 0
# HELP nv_inference_request_duration_us Cumulative inference request duration in microseconds
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{{model="tiny",version="2"}} {duration}
# HELP nv_inference_request_summary_us Summary of inference request duration in microseconds
# TYPE nv_inference_request_summary_us summary
nv_inference_request_summary_us_count{{model="tiny",version="2"}} 20
nv_inference_request_summary_us_sum{{model="tiny",version="2"}} 88398
nv_inference_request_summary_us{{model="tiny",version="2",quantile="0.5"}} 224
nv_inference_request_summary_us{{model="tiny",version="2",quantile="0.99"}} {p99}
"""


def metrics(ok: int, failed: int, duration: int = 0, p99: int = 4357) -> str:
    return METRICS.format(ok=ok, failed=failed, duration=duration, p99=p99)


def test_triton_metrics_are_summed_per_model_over_reasons() -> None:
    sample = parse_triton_metrics(metrics(ok=100, failed=7, duration=5000))
    assert sample["tiny|success"] == 100
    assert sample["tiny|failure"] == 7
    assert sample["tiny|duration_us"] == 5000
    assert sample["tiny|p99_us"] == 4357
    assert sample["other|success"] == 10


def test_window_counts_deltas_and_survives_a_pod_restart() -> None:
    before = {"a": parse_triton_metrics(metrics(100, 0)), "b": parse_triton_metrics(metrics(50, 5))}
    after = {
        "a": parse_triton_metrics(metrics(190, 10, duration=90_000)),  # +90 ok, +10 failed
        "b": parse_triton_metrics(metrics(3, 1)),  # restarted: counts from zero
        "c": parse_triton_metrics(metrics(7, 0)),  # a new pod
    }
    stats = window_stats(before, after)
    tiny = stats.models["tiny"]
    assert (tiny.success, tiny.failure) == (90 + 3 + 7, 10 + 1)
    # "other": +0 on a, 10 on the restarted b and 10 on the new c.
    assert stats.error_ratio == pytest.approx(11 / (100 + 11 + 20))
    assert stats.p99_ms == pytest.approx(4.357)
    assert stats.worst_model().model == "tiny"  # type: ignore[union-attr]


def test_post_promotion_verdicts() -> None:
    base = {"a": parse_triton_metrics(metrics(0, 0))}
    verdict = dict(max_error_ratio=0.01, min_requests=50, max_p99_ms=None, elapsed_s=5.0)
    bad = evaluate_window(
        base, {"a": parse_triton_metrics(metrics(90, 10))}, final=False, **verdict
    )  # type: ignore[arg-type]
    assert bad.status is CheckStatus.FAILED
    assert "error ratio" in bad.summary and "10 failed of 100" in bad.summary
    few = evaluate_window(base, {"a": parse_triton_metrics(metrics(5, 5))}, final=True, **verdict)  # type: ignore[arg-type]
    assert few.status is CheckStatus.PASSED and "too little traffic" in few.summary
    running = evaluate_window(
        base, {"a": parse_triton_metrics(metrics(500, 0))}, final=False, **verdict
    )  # type: ignore[arg-type]
    assert running.status is CheckStatus.SKIPPED
    slow = evaluate_window(
        base,
        {"a": parse_triton_metrics(metrics(500, 0, p99=90_000))},
        max_error_ratio=0.01,
        min_requests=50,
        max_p99_ms=50,
        elapsed_s=5,
        final=True,
    )
    assert slow.status is CheckStatus.FAILED and "p99 90.0 ms > 50 ms" in slow.summary
    no_summary = metrics(500, 0).replace('quantile="0.99"', 'quantile="0.5"')
    blind = evaluate_window(
        base,
        {"a": parse_triton_metrics(no_summary)},
        max_error_ratio=0.01,
        min_requests=50,
        max_p99_ms=50,
        elapsed_s=5,
        final=True,
    )
    assert blind.status is CheckStatus.FAILED and "summary_latencies=true" in blind.summary


# -- what an upgrade changes, on the real chart --------------------------------------------------
@pytest.fixture(scope="module")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render(chart: helm_python.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    out = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in out.items():
        if path.endswith(".txt"):
            continue
        docs += [
            d
            for d in yaml.safe_load_all(text)
            if d and not (d["metadata"].get("annotations") or {}).get("helm.sh/hook")
        ]
    return docs


def test_enabling_the_idle_color_changes_only_its_objects(chart: helm_python.Chart) -> None:
    before = copy.deepcopy(BASE_VALUES)
    after = copy.deepcopy(BASE_VALUES)
    after["green"] = {"enabled": True, "replicas": 2, "modelRepository": {"uri": "s3://m/v2"}}
    changes = manifest_changes(render(chart, before), render(chart, after))
    assert {(c.action, c.kind, c.color) for c in changes} == {
        ("create", "Deployment", "green"),
        ("create", "PodDisruptionBudget", "green"),
        ("create", "ConfigMap", "green"),  # its load shedder's configuration
    }
    objects = ReleaseObjects.from_manifest(render(chart, before), RELEASE)
    assert objects.deployment("green") == "triton-triton-deploy-green"
    assert objects.preview_service == "triton-triton-deploy-preview"


def test_flipping_active_color_changes_only_the_two_services(chart: helm_python.Chart) -> None:
    both = copy.deepcopy(BASE_VALUES)
    both["green"] = {"enabled": True, "replicas": 1, "modelRepository": {"uri": "s3://m/v2"}}
    flipped = copy.deepcopy(both) | {"activeColor": "green"}
    changes = manifest_changes(render(chart, both), render(chart, flipped))
    assert sorted((c.kind, c.name, c.fields) for c in changes) == [
        ("Service", "triton-triton-deploy", ("spec.selector.color",)),
        ("Service", "triton-triton-deploy-preview", ("spec.selector.color",)),
    ]


def test_a_shared_value_change_is_seen_outside_the_idle_color(chart: helm_python.Chart) -> None:
    changed = copy.deepcopy(BASE_VALUES)
    changed["triton"]["exitTimeoutSecs"] = 9
    changed["green"] = {"enabled": True, "modelRepository": {"uri": "s3://m/v2"}}
    changes = manifest_changes(render(chart, BASE_VALUES), render(chart, changed))
    assert any(c.kind == "Deployment" and c.color == "blue" for c in changes)


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2.5s", 2.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_names_the_option() -> None:
    with pytest.raises(RolloutUsageError, match="--ready-timeout: expected a duration"):
        parse_duration("soon", "--ready-timeout")


@pytest.mark.parametrize(
    "uri", ["s3://bucket/triton/v2", "gs://b/p", "as://acct/container/p", "pvc://models/v2"]
)
def test_repository_uris_the_chart_mounts(uri: str) -> None:
    validate_target(Target(model_repository=uri))


@pytest.mark.parametrize("uri", ["http://x/y", "s3://", "/local/dir", "pvc://Bad_Claim"])
def test_other_repository_uris_are_refused(uri: str) -> None:
    with pytest.raises(RolloutUsageError, match="--model-repository"):
        validate_target(Target(model_repository=uri))


# -- Lease lock and record, on the emulated API ----------------------------------------------------
@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path)
    yield emulator
    emulator.stop()


def test_lock_refuses_a_second_holder_and_frees_on_release(emulator: Emulator) -> None:
    first = RolloutLock(emulator.cluster(), "r-rollout", purpose="rollout A").acquire()
    second = RolloutLock(emulator.cluster(), "r-rollout", purpose="rollout B")
    second.holder = "someone@elsewhere pid 1"
    second.host = "elsewhere"
    with pytest.raises(LockHeld, match=r"held by .* \(rollout A\)"):
        second.acquire()
    first.release()
    assert (
        lease_state(emulator.cluster().get("coordination.k8s.io/v1", "leases", "r-rollout")) is None
    )
    second.acquire()
    second.release()


def test_lock_takes_over_an_expired_lease_and_a_dead_local_holder(emulator: Emulator) -> None:
    cluster = emulator.cluster()
    stale = RolloutLock(cluster, "r-rollout", purpose="old", duration_s=1)
    stale.holder = "someone@elsewhere pid 1"
    stale.host = "elsewhere"
    stale.acquire()
    stale._stop.set()  # stopped renewing (its process is gone)
    lease = cluster.get("coordination.k8s.io/v1", "leases", "r-rollout")
    assert lease_state(lease) is not None
    old = (now() - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cluster.patch("coordination.k8s.io/v1", "leases", "r-rollout", {"spec": {"renewTime": old}})
    RolloutLock(cluster, "r-rollout", purpose="new").acquire().release()

    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = RolloutLock(cluster, "r-rollout", purpose="killed run")
    killed.pid = dead.pid
    killed.holder = f"{killed.holder.split(' pid')[0]} pid {dead.pid}"
    killed.acquire()
    killed._stop.set()
    resumed = RolloutLock(cluster, "r-rollout", purpose="resume").acquire()
    assert resumed.took_over == killed.holder
    resumed.release()


def test_record_round_trips_and_keeps_a_history(emulator: Emulator) -> None:
    store = RecordStore(emulator.cluster(), "r-rollout", release="r")
    assert store.current() is None
    record = RolloutRecord(
        id="1",
        release="r",
        namespace=NAMESPACE,
        chart="c",
        from_color="blue",
        to_color="green",
        target=Target(model_repository="s3://m/v2"),
    )
    store.save(record)
    assert store.current() == record.model_copy(update={"updated_at": store.current().updated_at})  # type: ignore[union-attr]
    store.save(record, finished=True)
    assert [h["id"] for h in store.history()] == ["1"]


# -- helm and the CLI ---------------------------------------------------------------------------
def test_a_missing_helm_is_named(emulator: Emulator) -> None:
    helm = Helm(namespace=NAMESPACE, executable="helm-that-does-not-exist")
    with pytest.raises(HelmError, match="not on PATH"):
        helm.version()


def test_cli_lists_the_rollout_commands() -> None:
    out = subprocess.run(
        [TDEPLOY, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, COLUMNS="120"),
    ).stdout
    for command in ("rollout", "promote", "abort", "rollback", "status"):
        assert command in out
    help_text = subprocess.run(
        [TDEPLOY, "rollout", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, COLUMNS="200"),
    ).stdout
    assert "--model-repository" in help_text and "--manual" in help_text


# -- what the idle color gets ------------------------------------------------------------------------
def _state(values: dict[str, Any], user: dict[str, Any]) -> Any:
    from triton_deploy.rollout import ReleaseObjects, ReleaseState

    objects = ReleaseObjects(
        active_service="r-triton-deploy",
        preview_service="r-triton-deploy-preview",
        grpc_port=8001,
        metrics_port=8002,
        selector={},
    )
    return ReleaseState("r", values, [], objects, "blue", user)


def _record(uri: str, image_tag: str | None = None) -> RolloutRecord:
    return RolloutRecord(
        id="1", release="r", namespace=NAMESPACE, chart="c", from_color="blue", to_color="green",
        target=Target(model_repository=uri, image_tag=image_tag),
    )  # fmt: skip


def test_idle_color_gets_the_live_colors_settings_and_at_least_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from triton_deploy.rollout import ClusterAccess, DeploymentStatus, RolloutDriver

    driver = RolloutDriver(ClusterAccess(namespace=NAMESPACE))
    # The live Deployment runs 5 replicas (an HPA scaled it up from the configured 2).
    monkeypatch.setattr(
        driver, "deployment", lambda state, color: DeploymentStatus("d", True, desired=5)
    )
    credentials = {"existingSecret": "model-store-aws"}
    live = {
        "enabled": True,
        "replicas": 2,
        "imageTag": "24.10",
        "resources": {"limits": {"memory": "8Gi"}},
        "modelRepository": {
            "source": "objectStorage",
            "uri": "s3://m/v1",
            "credentials": credentials,
        },
    }
    values = {"autoscaling": {"enabled": True}, "blue": live, "green": {"enabled": False}}
    state = _state(values, {"blue": live, "green": {"nodeSelector": {"pool": "old"}}})
    record = _record("s3://m/v2")
    green = driver._idle_overrides(state, record)["green"]
    assert green["replicas"] == 5 and record.restore_replicas == 2
    assert green["resources"] == {"limits": {"memory": "8Gi"}}  # blue's own settings come along
    assert green["modelRepository"]["credentials"] == credentials
    assert green["modelRepository"]["uri"] == "s3://m/v2"
    assert green["imageTag"] == "24.10" and green["enabled"] is True and green["version"] == ""

    pvc = driver._idle_overrides(state, _record("pvc://models/triton/v2", image_tag="24.12"))
    repository = pvc["green"]["modelRepository"]
    assert repository["source"] == "pvc"
    assert repository["pvc"] == {"claimName": "models", "subPath": "triton/v2"}
    assert pvc["green"]["imageTag"] == "24.12"


def test_public_names_are_exported_and_sorted() -> None:
    import triton_deploy.rollout as rollout

    assert len(set(rollout.__all__)) == len(rollout.__all__)  # the order: ruff's RUF022
    for name in rollout.__all__:
        assert hasattr(rollout, name), name


def test_connection_drain_time_is_the_charts_own(chart: helm_python.Chart) -> None:
    """The driver reads the drain time the chart writes on each Deployment, and computes the
    same number when the annotation is missing."""
    from triton_deploy.rollout import connection_drain_s

    for grpc in ({}, {"maxConnectionAgeMs": 1500, "maxConnectionAgeGraceMs": 1000}):
        values = copy.deepcopy(BASE_VALUES)
        values["triton"]["grpc"] = grpc
        blue = next(d for d in render(chart, values) if d["kind"] == "Deployment")
        computed = chart.merge_values(values)
        annotated = connection_drain_s(computed, "blue", blue)
        assert annotated == connection_drain_s(computed, "blue", None)
    assert annotated == 3.0  # 1.5 s x 1.1 + 1 s, rounded up
