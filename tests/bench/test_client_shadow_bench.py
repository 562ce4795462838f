"""The client-shadow benchmark (primary p99 with shadowing on vs off) runs end to end and writes
its raw data; the numbers themselves are for a quiet machine, not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server


def test_client_shadow_bench_runs_and_writes_every_round(
    triton_server: TritonServer, tmp_path: Path
) -> None:
    out = tmp_path / "client_shadow.json"
    url = triton_server.grpc_url  # primary and shadow on one server: a smoke run
    result = subprocess.run(
        [str(Path(sys.executable).parent / "tdeploy"), "bench", "client-shadow", "--url", url,
         "--shadow-url", url, "--model", "digits", "--sample", "0.5", "--rounds", "2",
         "--duration", "1", "--warmup", "0.3", "--concurrency", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "median p99 ratio (shadow on / off)" in result.stdout
    data = json.loads(out.read_text())
    assert len(data["rounds"]) == 2 and data["machine"]["cpus"]
    for round_ in data["rounds"]:
        assert round_["on"]["calls"] > 0 and round_["off"]["calls"] > 0
        assert round_["on"]["errors"] == 0 and round_["off"]["errors"] == 0
        assert round_["on"]["shadowed"] + round_["on"]["dropped"] > 0  # shadowing was on
        assert round_["off"]["shadowed"] == 0
