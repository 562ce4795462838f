"""`tdeploy rollout --strategy canary|shadow`, and promote/abort/rollback/status mid-phase,
against the emulated cluster (harness.py) with the stand-in gateway (gateway.py).

Real: the CLI as a subprocess, its helm calls (to the TEST STAND-IN helm rendering the real
chart), HTTP to the Kubernetes API (kmock's emulator, plus server-side dry runs validated
against the vendored Gateway API CRD: apiserver.py), tritonservers per color, HAProxy as the
Services and as the gateway. Under load: test_canary_under_load.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway import GatewayStandIn
from harness import CHART, FULLNAME, MODEL, NAMESPACE, RELEASE, TDEPLOY, RolloutCluster
from prometheus_client import CollectorRegistry, start_http_server

from triton_deploy.clients import InferenceClient, ShadowConfig, Tolerance
from triton_deploy.runtime.server import free_port

pytestmark = pytest.mark.server


def args(cluster: RolloutCluster, *extra: str, uri: str = "s3://models/v2") -> list[str]:
    return [
        "rollout", "--release", RELEASE, "--chart", str(CHART), "--model-repository", uri,
        "--preview-url", cluster.proxy.url("preview"), "--analysis-window", "0",
        "--analysis-interval", "0.5s", "--scale-down-delay", "3s",
        "--abort-scale-down-delay", "1s", "--ready-timeout", "180s", "--route-timeout", "60s",
        *extra,
    ]  # fmt: skip


def route_weights(cluster: RolloutCluster) -> dict[str, int]:
    route = cluster.emulator.cluster().get("gateway.networking.k8s.io/v1", "grpcroutes", FULLNAME)
    assert route is not None
    return {
        ref["name"].rsplit("-", 1)[1]: int(ref["weight"])
        for ref in route["spec"]["rules"][0]["backendRefs"]
    }


def wait_step(
    cluster: RolloutCluster, step: int, rollout: Background, timeout: float = 420
) -> dict[str, Any]:
    """Until the running canary judges step ``step`` (0-based); returns the record."""
    found: dict[str, Any] = {}

    def at_step() -> bool:
        assert rollout.process.poll() is None, rollout.stderr()[-3000:]
        record = cluster.record() or {}
        traffic = record.get("traffic") or {}
        found.update(record)
        return (
            record.get("phase") == "canary"
            and traffic.get("step") == step
            and traffic.get("step_started_at") is not None
        )

    cluster.wait_for(at_step, timeout, f"canary step {step + 1}")
    return found


class Background:
    """``tdeploy ARGS`` running in the background, its output in files (a pipe could fill up
    and stop it while the test waits)."""

    def __init__(self, cluster: RolloutCluster, *argv: str) -> None:
        folder = Path(cluster.workdir)
        self.out = folder / f"rollout-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [TDEPLOY, *argv, "-n", NAMESPACE, "--kubeconfig", cluster.kubeconfig],
                env=cluster.env,
                stdout=out,
                stderr=err,
                text=True,
            )

    def finish(self, timeout: float = 240) -> tuple[int, dict[str, Any], str]:
        self.process.wait(timeout=timeout)
        out = self.out.read_text()
        return self.process.returncode, json.loads(out) if out.strip() else {}, self.stderr()

    def stderr(self) -> str:
        return self.err.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def test_canary_needs_the_gateway_and_valid_steps(cluster: RolloutCluster) -> None:
    """Refused before anything changes (the release here has gateway.enabled=false)."""
    before = cluster.objects()
    result = cluster.tdeploy(*args(cluster, "--strategy", "canary", "--steps", "10,100"))
    assert result.returncode == 1
    assert "gateway.enabled is false" in result.stderr and "Traceback" not in result.stderr
    for steps, message in [
        ("10,5,100", "--steps must increase"),
        ("10,50", "must end at 100"),
        ("0,100", "from 1 to 100"),
        ("ten", "whole percents"),
    ]:
        result = cluster.tdeploy(*args(cluster, "--strategy", "canary", "--steps", steps))
        assert result.returncode == 1 and message in result.stderr, result.stderr
    for extra, message in [
        (("--strategy", "canary"), "--strategy canary needs --steps"),
        (("--steps", "10,100"), "--steps is for --strategy canary"),
        (("--strategy", "rainbow"), "--strategy must be bluegreen, canary or shadow"),
        (("--shadow-metrics", "http://x/metrics"), "--shadow-metrics is for --strategy shadow"),
    ]:
        result = cluster.tdeploy(*args(cluster, *extra))
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert cluster.objects() == before


def test_each_step_changes_only_the_route_proven_by_server_side_dry_runs_and_status_shows_it(
    gateway_cluster: tuple[RolloutCluster, GatewayStandIn],
) -> None:
    cluster, _ = gateway_cluster
    emulator = cluster.emulator.emulator
    rollout = Background(cluster, *args(cluster, "--strategy", "canary", "--steps", "25,100",
                                        "--step-duration", "600s", "--json"))  # fmt: skip
    try:
        wait_step(cluster, 0, rollout)
        assert route_weights(cluster) == {"blue": 75, "green": 25}
        status = cluster.tdeploy("status", "--release", RELEASE, "--json")
        traffic = json.loads(status.stdout)["traffic"]
        assert traffic["weights"] == {"blue": 75, "green": 25} and traffic["accepted"]
        assert traffic["phase"]["steps"] == [25, 100] and traffic["phase"]["step"] == 0
        text = cluster.tdeploy("status", "--release", RELEASE)
        assert f"GRPCRoute {FULLNAME}: blue 75 %, green 25 % (accepted)" in text.stdout
        assert cluster.record()["traffic"]["weights"] == {"blue": 75, "green": 25}  # type: ignore[index]
        promoted = cluster.tdeploy("promote", "--release", RELEASE, "--json")
        assert promoted.returncode == 0, promoted.stderr[-3000:] + rollout.stderr()[-3000:]
        assert "requested from the running rollout" in promoted.stderr
        code, data, err = rollout.finish()
    finally:
        rollout.kill()
    assert code == 0, err[-4000:]
    assert data["result"] == "succeeded"
    assert [s["status"] for s in data["traffic"]["history"]] == ["skipped"]
    assert "the remaining steps are skipped" in err
    assert cluster.values()["activeColor"] == "green"
    assert route_weights(cluster) == {"blue": 0, "green": 100}
    # The weight change was checked twice before it was made: helm's dry run changed only the
    # route, and the API server accepted the route in a server-side dry run.
    assert "plan: only GRPCRoute/" in err and "server-side dry run" in err
    runs = [(name, patch) for name, patch, accepted in emulator.dry_runs if accepted]
    assert runs and all(name == FULLNAME for name, _ in runs)
    weights = [ref["weight"] for ref in runs[0][1]["spec"]["rules"][0]["backendRefs"]]
    assert weights == [75, 25]


def test_abort_mid_canary_puts_the_route_back_and_rollback_does_the_same(
    gateway_cluster: tuple[RolloutCluster, GatewayStandIn],
) -> None:
    cluster, _ = gateway_cluster
    for command in ("abort", "rollback"):
        rollout = Background(cluster, *args(cluster, "--strategy", "canary", "--steps",
                                            "10,50,100", "--step-duration", "600s", "--json"))  # fmt: skip
        try:
            wait_step(cluster, 0, rollout)
            assert route_weights(cluster)["green"] == 10
            stopped = cluster.tdeploy(command, "--release", RELEASE, "--json")
            assert stopped.returncode == 0, stopped.stderr[-3000:] + rollout.stderr()[-3000:]
            code, data, err = rollout.finish()
        finally:
            rollout.kill()
        assert code == 3, err[-4000:]
        assert data["result"] == "aborted"
        assert "aborted by `tdeploy abort` at canary step 1/3 (10 %)" in data["message"]
        assert route_weights(cluster) == {"blue": 100, "green": 0}
        values = cluster.values()
        assert values.get("activeColor", "blue") == "blue" and values["green"]["replicas"] == 0


def test_promote_after_the_canary_process_died_promotes_at_once(
    gateway_cluster: tuple[RolloutCluster, GatewayStandIn],
) -> None:
    cluster, _ = gateway_cluster
    rollout = Background(cluster, *args(cluster, "--strategy", "canary", "--steps", "10,50,100",
                                        "--step-duration", "600s"))  # fmt: skip
    try:
        wait_step(cluster, 0, rollout)
    finally:
        os.kill(rollout.process.pid, signal.SIGKILL)
        rollout.process.wait()
    assert route_weights(cluster)["green"] == 10
    result = cluster.tdeploy("promote", "--release", RELEASE, "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(result.stdout)
    assert data["result"] == "succeeded"
    assert route_weights(cluster) == {"blue": 0, "green": 100}
    assert cluster.values()["activeColor"] == "green"


def test_a_route_change_the_api_server_refuses_aborts_with_nothing_moved(
    gateway_cluster: tuple[RolloutCluster, GatewayStandIn],
) -> None:
    cluster, gateway = gateway_cluster
    refusal = 'admission webhook "validate.gateway.example" denied the request: no canaries today'
    cluster.emulator.emulator.refuse_routes = refusal
    result = cluster.tdeploy(*args(cluster, "--strategy", "canary", "--steps", "10,100", "--json"))
    assert result.returncode == 3, result.stderr[-4000:]
    data = json.loads(result.stdout)
    route = next(c for c in data["checks"] if c["name"] == "route")
    assert route["status"] == "failed" and "server-side dry run" in route["summary"]
    assert "no canaries today" in route["summary"]
    assert route_weights(cluster) == {"blue": 100, "green": 0}
    assert all(w["green"] == 0 for _, w, _ in gateway.applied)


def test_shadow_aborts_when_the_clients_see_green_answer_differently(
    gateway_cluster: tuple[RolloutCluster, GatewayStandIn],
) -> None:
    """The clients shadow to the preview Service (ShadowConfig) and export their comparison
    counters; the shadow phase reads them (--shadow-metrics): green's version 2 answers every
    input differently from blue's version 1, so the phase fails although green fails nothing."""
    cluster, gateway = gateway_cluster
    registry = CollectorRegistry()
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    shadow = ShadowConfig(
        cluster.proxy.url("preview"), sample=1.0, tolerance=Tolerance(1e-4, 0), registry=registry
    )
    stop = threading.Event()

    def load() -> None:
        with InferenceClient(gateway.mirror.url, shadow=shadow) as client:
            x = np.array([[0.3]], np.float32)
            while not stop.is_set():
                client.infer(MODEL, X=x)
                time.sleep(0.02)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        result = cluster.tdeploy(*args(
            cluster, "--strategy", "shadow", "--shadow-duration", "8s", "--json",
            "--shadow-metrics", f"http://127.0.0.1:{port}/metrics",
            "--max-divergence-ratio", "0.01",
        ))  # fmt: skip
    finally:
        stop.set()
        thread.join(timeout=30)
        server.shutdown()
    assert result.returncode == 3, result.stderr[-4000:]
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    divergence = checks["shadow-divergence"]
    assert divergence["status"] == "failed", checks
    assert divergence["numbers"]["divergent"] >= 1 and divergence["numbers"]["errors"] == 0
    assert "differ from blue's answers beyond the model's tolerance" in divergence["summary"]
    assert checks["shadow"]["status"] != "failed"  # green itself failed no request
    mirror = cluster.emulator.cluster().get("gateway.networking.k8s.io/v1", "grpcroutes", FULLNAME)
    assert mirror is not None and "filters" not in mirror["spec"]["rules"][0]  # mirror off
    assert cluster.values().get("activeColor", "blue") == "blue"
    assert any(m == "green" for _, _, m in gateway.applied)
