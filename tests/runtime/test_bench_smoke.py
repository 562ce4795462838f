"""The benchmarks run end to end (numbers are printed by them, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from triton_deploy.runtime import bench
from triton_deploy.runtime.server import TritonServer


@pytest.mark.server
def test_batching_benchmark_runs_and_writes_its_report(
    model_repository: Path, tmp_path: Path
) -> None:
    code = bench.main(
        [
            "--repository",
            str(model_repository),
            "--seconds",
            "0.5",
            "--concurrency",
            "1",
            "4",
            "--models",
            "ctr_xgb",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    points = json.loads((tmp_path / "bench.json").read_text())["points"]
    assert {(p["batching"], p["concurrency"]) for p in points} == {
        ("on", 1),
        ("on", 4),
        ("off", 1),
        ("off", 4),
    }
    assert all(p["requests"] > 0 and p["errors"] == 0 for p in points)
    assert all(p["avg_batch"] == 1.0 for p in points if p["batching"] == "off")
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_batching_variant_repositories(model_repository: Path, tmp_path: Path) -> None:
    from triton_deploy.runtime.repository import read_config

    off = bench.variant(model_repository, tmp_path / "off", batching=False, queue=False)
    queued = bench.variant(model_repository, tmp_path / "queued", batching=True, queue=True)
    assert not read_config(off / "ctr_xgb" / "config.pbtxt").HasField("dynamic_batching")
    policy = read_config(queued / "ctr_xgb" / "config.pbtxt").dynamic_batching.default_queue_policy
    assert policy.max_queue_size > 0


@pytest.mark.server
def test_client_benchmarks_run(triton_server: TritonServer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "triton_deploy.clients.bench",
            "--url",
            triton_server.grpc_url,
            "--overhead",
            "--model",
            "digits",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "client-side cost per call" in result.stdout
    paired = subprocess.run(
        [
            sys.executable,
            "-m",
            "triton_deploy.clients.bench",
            "--url",
            triton_server.grpc_url,
            "--model",
            "ctr",
            "--rounds",
            "1",
            "--duration",
            "0.5",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert paired.returncode == 0, paired.stderr
    assert "tritonclient" in paired.stdout and "triton_deploy" in paired.stdout
