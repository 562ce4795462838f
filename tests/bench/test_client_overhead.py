"""The client library's overhead mode (moved here from clients/bench.py) runs end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server


def test_client_overhead_runs(triton_server: TritonServer) -> None:
    model = "digits"  # an ensemble of the example repository: the client's own use case
    result = subprocess.run(
        [sys.executable, "-m", "triton_deploy.bench.client_overhead", "--url", triton_server.grpc_url,
         "--overhead", "--model", model],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "client-side cost per call" in result.stdout
    paired = subprocess.run(
        [sys.executable, "-m", "triton_deploy.bench.client_overhead", "--url", triton_server.grpc_url,
         "--model", model, "--rounds", "1", "--duration", "0.5", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert paired.returncode == 0, paired.stderr
    assert "tritonclient" in paired.stdout and "triton_deploy" in paired.stdout
