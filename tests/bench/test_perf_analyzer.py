"""perf_analyzer 2.51 from its own environment drives the real server (the environment is
created here when missing: pip from PyPI and Debian's libb64-0d, about a minute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_deploy.bench import envs
from triton_deploy.bench.payloads import model_info, sample_rows
from triton_deploy.bench.perf_analyzer import run_perf_analyzer, write_input_data
from triton_deploy.runtime.server import TritonServer

pytestmark = [pytest.mark.server, pytest.mark.perf_analyzer]


def test_perf_analyzer_measures_a_user_model(user_repository: Path, tmp_path: Path) -> None:
    envs.environment("perf_analyzer").create()
    info = model_info(user_repository, "tiny_trees")
    rows, _ = sample_rows(user_repository, info)
    data = write_input_data(info, rows, tmp_path / "input.json")
    with TritonServer(user_repository) as server:
        single = run_perf_analyzer(server.grpc_url, info, data, concurrency=2, seconds=1.0)
        batched = run_perf_analyzer(
            server.grpc_url, info, data, concurrency=1, batch=8, seconds=1.0
        )
        poisson = run_perf_analyzer(server.grpc_url, info, data, request_rate=200, seconds=1.0)
    assert single.samples_per_s > 0 and 0 < single.p50_ms <= single.p99_ms
    assert single.compute_infer_us > 0 and single.client_cpu > 0
    assert batched.batch == 8 and batched.samples_per_s == pytest.approx(8 * batched.throughput)
    assert poisson.request_rate == 200 and poisson.samples_per_s > 0
