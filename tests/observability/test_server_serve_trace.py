"""`tdeploy serve --trace ...` in a real process: the banner says where traces go, every request
is in the trace files once the server stops, and `tdeploy inference-log` reads them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from triton_deploy.observability import read_inference_log
from triton_deploy.runtime.server import free_port

pytestmark = pytest.mark.server


def test_serve_with_trace_writes_the_inference_log(
    observed_repository: Path, tmp_path: Path
) -> None:
    grpc_port = free_port()
    trace_dir = tmp_path / "not-yet" / "traces"  # serve creates it: Triton would write nothing
    tdeploy = Path(sys.executable).parent / "tdeploy"
    process = subprocess.Popen(
        [str(tdeploy), "serve", "--repository", str(observed_repository),
         "--grpc-port", str(grpc_port), "--http-port", str(free_port()),
         "--metrics-port", str(free_port()), "--no-log-server",
         "--trace", f"file={trace_dir}/green.json", "--trace", "rate=1",
         "--trace", "level=TIMESTAMPS", "--trace", "level=TENSORS", "--trace", "log-frequency=4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("  stop:"):
                break
        banner = "".join(seen)
        assert (
            f"traces   triton, level TIMESTAMPS+TENSORS, every 1 request(s) -> "
            f"{trace_dir}/green.json.N (4 traces per file)"
        ) in banner, banner
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        for i in range(10):
            tensor = grpcclient.InferInput("features", [1, 4], "FP32")
            tensor.set_data_from_numpy(np.full((1, 4), i, dtype=np.float32))
            client.infer("scorer", [tensor], request_id=f"req-{i}")
        client.close()
        # Two full files (8 traces) are on disk while the server runs (a trace is written once
        # Triton releases it, just after its response).
        deadline = time.monotonic() + 10
        while len(list(trace_dir.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(p.name for p in trace_dir.iterdir()) == ["green.json.0", "green.json.1"]
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    # The last 2 traces are written when the server stops.
    log = read_inference_log([trace_dir])
    assert [r.request_id for r in log.records] == [f"req-{i}" for i in range(10)]
    assert {r.color for r in log.records} == {"green"}
    assert [float(r.inputs["features"][0, 0]) for r in log.records if r.inputs] == list(range(10))
