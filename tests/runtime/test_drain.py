"""Graceful drain: SIGTERM loses no in-flight request, ensembles included, also after overload."""

from __future__ import annotations

import collections
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from servingtools import pipeline_repository

from triton_deploy.bench.load import Target
from triton_deploy.bench.overload import load_then_stop
from triton_deploy.runtime.repository import read_repository
from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server


def _burst(url: str, n: int, results: list[object]) -> list[threading.Thread]:
    """``n`` concurrent requests to the ``pipeline`` ensemble, each in a thread of its own."""

    def one(i: int) -> None:
        with grpcclient.InferenceServerClient(url) as client:
            x = grpcclient.InferInput("X", [1, 1], "FP32")
            x.set_data_from_numpy(np.array([[i]], np.float32))
            try:
                results.append(float(client.infer("pipeline", [x]).as_numpy("Y")[0, 0]) - i)
            except Exception as exc:
                results.append(str(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads


def _stop_during_burst(server: TritonServer, *, drain_first: bool) -> tuple[list[object], int]:
    results: list[object] = []
    threads = _burst(server.grpc_url, 16, results)
    time.sleep(0.5)  # every request is now in the ensemble's slow first step (1 s)
    code = server.stop(drain_first=drain_first)
    for thread in threads:
        thread.join(timeout=60)
    return results, code or 0


def test_triton_sigterm_alone_drops_in_flight_ensemble_requests(tmp_path: Path) -> None:
    """The 2.51 behaviour the drain exists for: composing models stop while ensembles run."""
    server = TritonServer(pipeline_repository(tmp_path / "repo"), exit_timeout_s=20).start()
    results, _ = _stop_during_burst(server, drain_first=False)
    failed = [r for r in results if r != 2.0]
    assert failed, "Triton's own SIGTERM kept every ensemble request: the upstream bug is fixed"
    assert all("Server is stopping" in str(r) for r in failed), failed


def test_stop_drains_in_flight_ensemble_requests(tmp_path: Path) -> None:
    server = TritonServer(pipeline_repository(tmp_path / "repo"), exit_timeout_s=20).start()
    results, code = _stop_during_burst(server, drain_first=True)
    assert results == [2.0] * 16
    assert code == 0
    assert server.last_drain is not None and server.last_drain.complete
    assert server.last_drain.unloaded[0] == "pipeline"  # the ensemble first


@pytest.mark.parametrize(
    ("overload", "shedder"),
    [(False, False), (True, False), (True, True)],
    ids=["c256", "c256-plus-overload", "c256-plus-overload-through-the-shedder"],
)
def test_sigterm_at_c256_through_the_ensembles_loses_nothing(
    model_repository: Path, overload: bool, shedder: bool
) -> None:
    if shedder and shutil.which("haproxy") is None:
        pytest.skip("haproxy missing: run `bash .ci/system-deps`")
    server = TritonServer(
        model_repository, exit_timeout_s=30, max_inflight=32 if shedder else None
    ).start()
    models = read_repository(model_repository)
    ensembles = [m for m in server.loaded if models[m].kind == "ensemble"]
    targets = [Target.from_repository(model_repository, m, server.grpc_url) for m in ensembles]
    # "overload": an open loop on top of c=256 at a rate no 2-core machine keeps up with
    run = load_then_stop(server, targets, overload_rate=3000 if overload else None, load_seconds=4)
    outcomes = collections.Counter(s.outcome for s in run.before_stop())
    assert outcomes["ok"] > 256, outcomes
    assert run.in_flight_failures() == []
    assert run.exit_code == 0  # exited by itself within the exit timeout, no SIGKILL
    assert server.last_drain is not None and server.last_drain.complete


def test_tdeploy_drain_unloads_everything_and_reports_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from triton_deploy.cli import app

    with TritonServer(pipeline_repository(tmp_path / "repo", first_step_delay_s=0)) as server:
        assert server.admin_key  # a library server has no run-state file: the key is given
        result = CliRunner().invoke(
            app,
            ["drain", "--url", server.grpc_url, "--timeout", "30", "--admin-key", server.admin_key],
        )
        assert result.exit_code == 0, result.output
        assert "drained 3 models" in result.output
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            index = client.get_model_repository_index(
                headers=server.admin_grpc_headers, as_json=True
            )["models"]
        assert {m["name"]: m["state"] for m in index} == dict.fromkeys(
            ("fast", "pipeline", "slow"), "UNAVAILABLE"
        )
    result = CliRunner().invoke(app, ["drain", "--url", "127.0.0.1:1", "--timeout", "1"])
    assert result.exit_code == 1 and "drain failed" in result.output
