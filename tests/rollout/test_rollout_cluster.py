"""`tdeploy rollout/promote/abort/rollback/status` against the emulated cluster (harness.py).

Real: the CLI as a subprocess, the helm calls it makes (to the TEST STAND-IN helm, which
renders the real chart with Helm's engine), HTTP to the Kubernetes API (kmock's emulator),
tritonservers serving each color's model repository as its Deployment says, HAProxy as the
Services. Mocked: the Kubernetes controllers and the kubelet (``Kubelet`` writes Deployment
status and Pods, as they would), and the API server's pod proxy.

Post-promotion failure → automatic switch-back is tested under load, with the failures coming
from Triton's own counters: test_rollout_under_load.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import (
    CHART,
    FULLNAME,
    MODEL,
    RELEASE,
    RolloutCluster,
    broken_repository,
    expected,
    write_golden,
)

from triton_deploy.clients import InferenceClient

pytestmark = pytest.mark.server


def rollout_args(cluster: RolloutCluster, *extra: str, uri: str = "s3://models/v2") -> list[str]:
    return [
        "rollout",
        "--release",
        RELEASE,
        "--chart",
        str(CHART),
        "--model-repository",
        uri,
        "--preview-url",
        cluster.proxy.url("preview"),
        "--analysis-window",
        "2s",
        "--analysis-interval",
        "1s",
        "--scale-down-delay",
        "3s",
        "--abort-scale-down-delay",
        "1s",
        "--ready-timeout",
        "120s",
        *extra,
    ]


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def checks(data: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in data["checks"]}


def selector(cluster: RolloutCluster, service: str) -> str:
    svc = cluster.emulator.cluster().get("v1", "services", service)
    assert svc is not None
    return str(svc["spec"]["selector"]["color"])


def answer_version(cluster: RolloutCluster, role: str) -> int:
    """Which version answers through the active (or preview) Service, checked for correctness."""
    x = np.array([[0.25]], np.float32)
    with InferenceClient(cluster.proxy.url(role), max_connection_age_s=None) as client:
        out = client.infer(MODEL, X=x)
    version = int(out["V"][0, 0])
    np.testing.assert_allclose(out["Y"], expected(x, version)["Y"])
    return version


def blue_starts(cluster: RolloutCluster) -> int:
    return sum(1 for _, color, _ in cluster.kubelet.starts if color == "blue")


def test_rollout_deploys_checks_promotes_and_scales_down_then_rollback_cold(
    cluster: RolloutCluster, golden_v2: Path
) -> None:
    assert answer_version(cluster, "active") == 1
    result = cluster.tdeploy(
        *rollout_args(cluster, "--golden", str(golden_v2), "--version", "v2"), "--json"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = run_json(result)
    assert data["result"] == "succeeded" and data["phase"] == "done"
    assert checks(data) == {
        "availability": "passed",
        "readiness": "passed",
        "parity": "passed",
        "slo": "skipped",
        "metrics": "passed",
        "post-promotion": "passed",
    }
    assert data["models"] == {MODEL: ["2"]}
    # Traffic: the active Service selects green and green answers version 2.
    assert selector(cluster, FULLNAME) == "green"
    assert answer_version(cluster, "active") == 2
    values = cluster.values()
    assert values["activeColor"] == "green"
    assert values["blue"]["replicas"] == 0
    assert values["green"]["modelRepository"]["uri"] == "s3://models/v2"
    assert values["green"]["version"] == "v2"
    # Blue's pods were never restarted before it was scaled down (only the initial start).
    assert blue_starts(cluster) == 1
    cluster.wait_for(lambda: cluster.kubelet.ready_server("blue") is None, 30, "blue scaled down")
    # Every step is one helm revision, each described; helm calls are in the JSON.
    descriptions = [h["description"] for h in cluster.history()]
    assert descriptions[1:] == [
        f"tdeploy {data['id']}: deploy green",
        f"tdeploy {data['id']}: promote green",
        f"tdeploy {data['id']}: scale blue to 0",
    ]
    upgrades = [c["argv"] for c in data["helm_calls"] if c["argv"][1] == "upgrade"]
    assert all("--reuse-values" in argv for argv in upgrades)

    # Running the same rollout again changes nothing.
    again = cluster.tdeploy(*rollout_args(cluster), "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(cluster.history()) == 4

    # Rollback while blue is cold: scaled up to green's size, ready, then the switch.
    back = cluster.tdeploy("rollback", "--release", RELEASE, "--scale-down-delay", "3s", "--json")
    assert back.returncode == 0, back.stderr[-4000:]
    assert "blue is cold" in back.stderr
    assert run_json(back)["kind"] == "rollback"
    assert selector(cluster, FULLNAME) == "blue"
    assert answer_version(cluster, "active") == 1
    assert blue_starts(cluster) == 2
    assert cluster.values()["green"]["replicas"] == 0

    status = run_json(cluster.tdeploy("status", "--release", RELEASE, "--json"))
    assert status["live_color"] == "blue" and status["consistent"]
    assert status["colors"]["blue"]["replicas"]["ready"] == 1
    assert status["colors"]["green"]["model_repository"] == "s3://models/v2"
    assert [h["kind"] for h in status["history"]] == ["rollback", "rollout"]
    assert status["lock"] is None
    assert not cluster.kubelet.errors and not cluster.proxy.errors


def test_manual_rollout_waits_for_promote_abort_or_promote_then_rollback_while_warm(
    cluster: RolloutCluster,
) -> None:
    manual = rollout_args(cluster, "--manual", "--keep-old-replicas", "1")
    result = cluster.tdeploy(*manual, "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    data = run_json(result)
    assert data["result"] == "awaiting-promotion"
    assert "tdeploy promote" in data["message"]
    assert selector(cluster, FULLNAME) == "blue"  # nothing promoted yet
    assert answer_version(cluster, "preview") == 2

    # The operator says no: abort scales green down, blue never moved.
    aborted = cluster.tdeploy("abort", "--release", RELEASE, "--json")
    assert aborted.returncode == 0, aborted.stderr[-4000:]
    assert run_json(aborted)["result"] == "aborted"
    assert cluster.values()["green"]["replicas"] == 0
    assert selector(cluster, FULLNAME) == "blue"

    # Again, and this time promote.
    result = cluster.tdeploy(*manual, "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    status = run_json(cluster.tdeploy("status", "--release", RELEASE, "--json"))
    assert status["last_rollout"]["result"] == "awaiting-promotion"
    assert status["colors"]["green"]["replicas"]["ready"] == 1

    promoted = cluster.tdeploy("promote", "--release", RELEASE, "--json")
    assert promoted.returncode == 0, promoted.stderr[-4000:]
    assert run_json(promoted)["result"] == "succeeded"
    assert selector(cluster, FULLNAME) == "green"
    assert cluster.values()["blue"]["replicas"] == 1  # --keep-old-replicas 1: blue stays warm

    starts = blue_starts(cluster)
    back = cluster.tdeploy("rollback", "--release", RELEASE, "--scale-down-delay", "3s")
    assert back.returncode == 0, back.stderr[-4000:]
    assert "blue is warm" in back.stderr
    assert selector(cluster, FULLNAME) == "blue"
    assert answer_version(cluster, "active") == 1
    assert blue_starts(cluster) == starts  # a switch only: no blue pod restarted

    nothing = cluster.tdeploy("promote", "--release", RELEASE)
    assert nothing.returncode == 1 and "nothing to promote" in nothing.stderr


def test_parity_failure_aborts_and_the_live_color_keeps_serving(
    cluster: RolloutCluster, repositories: dict[str, Path]
) -> None:
    repository = repositories["s3://models/v2"]
    write_golden(repository, 3)  # the golden case of another version: outputs differ
    result = cluster.tdeploy(*rollout_args(cluster, "--golden", str(repository)), "--json")
    assert result.returncode == 3, result.stderr[-4000:]
    data = run_json(result)
    assert data["result"] == "aborted"
    assert checks(data)["parity"] == "failed"
    assert "parity" in data["message"] and "max abs diff" in data["message"]
    assert "rollout aborted" in result.stderr
    assert selector(cluster, FULLNAME) == "blue"
    assert answer_version(cluster, "active") == 1
    assert blue_starts(cluster) == 1
    values = cluster.values()
    assert "activeColor" not in values  # never flipped
    assert values["green"]["replicas"] == 0
    cluster.wait_for(lambda: cluster.kubelet.ready_server("green") is None, 30, "green down")
    # Green holds the version that failed its checks: there is nothing to roll back to.
    back = cluster.tdeploy("rollback", "--release", RELEASE)
    assert back.returncode == 1 and "nothing to roll back to" in back.stderr


def test_readiness_timeout_aborts(cluster: RolloutCluster, tmp_path: Path) -> None:
    cluster.repositories["s3://models/broken"] = broken_repository(tmp_path / "broken")
    result = cluster.tdeploy(
        *rollout_args(cluster, uri="s3://models/broken")[:-2], "--ready-timeout", "20s", "--json"
    )
    assert result.returncode == 3, result.stderr[-4000:]
    data = run_json(result)
    assert checks(data)["availability"] == "failed"
    assert "0/1 available" in data["message"] and "not ready after 20 s" in data["message"]
    assert selector(cluster, FULLNAME) == "blue"
    assert answer_version(cluster, "active") == 1
    assert cluster.values()["green"]["replicas"] == 0


def _wait_phase(cluster: RolloutCluster, phase: str, process: subprocess.Popen[str]) -> None:
    def reached() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"rollout exited early: {process.communicate()[1][-3000:]}")
        record = cluster.record()
        return record is not None and record["phase"] == phase

    cluster.wait_for(reached, 180, f"phase {phase}")


def test_concurrent_rollout_refused_then_interrupted_rollout_resumes(
    cluster: RolloutCluster,
) -> None:
    cluster.kubelet.hold.add("green")  # green's pods do not start yet (a slow image pull)
    first = cluster.spawn(*rollout_args(cluster))
    try:
        _wait_phase(cluster, "waiting", first)
        objects = cluster.objects()
        second = cluster.tdeploy(*rollout_args(cluster))
        assert second.returncode == 1
        assert "another rollout of this release is running" in second.stderr
        assert "rollout" in second.stderr and "blue→green" in second.stderr
        other = cluster.tdeploy(*rollout_args(cluster, uri="s3://models/v1"))
        assert other.returncode == 1 and "is in progress at step waiting" in other.stderr
        assert cluster.objects().keys() == objects.keys()

        os.kill(first.pid, signal.SIGKILL)  # interrupted while waiting for green
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    status = run_json(cluster.tdeploy("status", "--release", RELEASE, "--json"))
    assert status["last_rollout"]["interrupted"] is False  # the Lease has not expired yet...
    assert status["lock"] is not None  # ...but its holder is gone: a rerun here takes it over

    cluster.kubelet.hold.discard("green")
    revisions = len(cluster.history())
    resumed = cluster.tdeploy(*rollout_args(cluster), "--json")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resuming rollout" in resumed.stderr and "took over the lock" in resumed.stderr
    assert run_json(resumed)["result"] == "succeeded"
    assert len(cluster.history()) == revisions + 2  # promote and scale-down; no second deploy
    assert selector(cluster, FULLNAME) == "green"


def test_rollout_interrupted_after_promotion_resumes_where_it_stopped(
    cluster: RolloutCluster,
) -> None:
    args = rollout_args(cluster)
    args[args.index("--analysis-window") + 1] = "30s"
    first = cluster.spawn(*args)
    try:
        _wait_phase(cluster, "post-analysis", first)
        first.send_signal(signal.SIGINT)  # Ctrl-C: the record says where it stopped
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert "interrupted at step post-analysis" in stderr
    assert selector(cluster, FULLNAME) == "green"
    status = run_json(cluster.tdeploy("status", "--release", RELEASE, "--json"))
    assert status["last_rollout"]["interrupted"] is True and status["lock"] is None

    args[args.index("--analysis-window") + 1] = "2s"
    resumed = cluster.tdeploy(*args, "--json")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resuming rollout" in resumed.stderr
    assert run_json(resumed)["result"] == "succeeded"
    assert cluster.values()["blue"]["replicas"] == 0


def test_bad_arguments_change_nothing(cluster: RolloutCluster, tmp_path: Path) -> None:
    bad_slo = tmp_path / "slo.yaml"
    bad_slo.write_text("models: {digits: {p99_ms: -1}}\n")
    cases: list[tuple[list[str], str]] = [
        (["--model-repository", "http://example.com/models"], "--model-repository"),
        (["--model-repository", "s3://"], "is not a model repository"),
        (["--image-tag", "24.10:bad"], "--image-tag"),
        (["--version", "-v2-"], "--version"),
        (["--release", "nosuchrelease"], "not found"),
        (["--golden", str(tmp_path / "missing")], "no golden cases"),
        (["--slo", str(bad_slo)], "--slo"),
        (["--scale-down-delay", "2s"], "shorter than blue's connection drain time (3 s"),
        (["--ready-timeout", "soon"], "expected a duration"),
        (["--chart", str(tmp_path)], "no Helm chart there"),
    ]
    before = cluster.objects()
    revisions = len(cluster.history())
    for extra, message in cases:
        args = rollout_args(cluster)
        for i in range(0, len(extra), 2):
            if extra[i] in args:
                args[args.index(extra[i]) + 1] = extra[i + 1]
            else:
                args += extra[i : i + 2]
        result = cluster.tdeploy(*args)
        assert result.returncode == 1, (extra, result.stderr[-2000:])
        assert message in result.stderr, (extra, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
    # An unreachable cluster: a kubeconfig pointing at a closed port.
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(Path(cluster.kubeconfig).read_text().replace(f":{cluster.emulator.port}", ":1"))
    result = cluster.tdeploy(*rollout_args(cluster), kubeconfig=str(dead))
    assert result.returncode == 1 and "cannot reach the Kubernetes API" in result.stderr
    assert cluster.objects() == before
    assert len(cluster.history()) == revisions


def test_slo_failure_aborts(
    cluster: RolloutCluster, model_repository: Path, tmp_path: Path
) -> None:
    """The SLO step is the project's Locust load test (its task mix calls the example
    ensembles), so the new color serves the example repository here."""
    cluster.repositories["s3://models/examples"] = model_repository
    slo = tmp_path / "slo.yaml"
    slo.write_text(
        "environment: local\nmodels:\n  digits: {p50_ms: 0.001, max_error_ratio: 0.001}\n"
    )
    result = cluster.tdeploy(
        *rollout_args(cluster, uri="s3://models/examples"),
        "--slo",
        str(slo),
        "--slo-users",
        "2",
        "--slo-run-time",
        "5s",
        "--reports",
        str(tmp_path / "reports"),
        "--json",
    )
    assert result.returncode == 3, result.stderr[-4000:]
    data = run_json(result)
    assert checks(data)["slo"] == "failed"
    assert (
        "models.digits.p50_ms: FAIL" in data["message"] and "limit <= 0.001 ms" in data["message"]
    )
    assert list((tmp_path / "reports").glob("*/local_stats.csv"))
    assert selector(cluster, FULLNAME) == "blue"
    assert answer_version(cluster, "active") == 1
