"""Overload protection: HAProxy in front of Triton's gRPC port bounds what Triton holds and
answers the rest at once, without Triton's queue policy (whose batcher stalls in 2.51)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from servingtools import pipeline_repository
from tritonclient.utils import InferenceServerException

from triton_deploy.runtime.server import TritonServer
from triton_deploy.runtime.shedder import (
    OVERLOADED_MESSAGE,
    read_access_log,
    render_config,
    retarget,
    shedder_bounds,
    with_access_log,
)

needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy missing: run `bash .ci/system-deps`"
)
pytestmark = [needs_haproxy]


@pytest.mark.parametrize("access_log", [False, True])
def test_the_rendered_config_is_valid_haproxy(tmp_path: Path, access_log: bool) -> None:
    config = render_config(
        listen=("0.0.0.0", 8001),
        upstream=("127.0.0.1", 8011),
        max_inflight=32,
        max_queued=16,
        access_log=access_log,
    )
    (tmp_path / "haproxy.cfg").write_text(config)
    check = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert "maxconn 32" in config and "queue(triton) ge 16" in config
    assert "hdr grpc-status 14" in config and OVERLOADED_MESSAGE in config


def _call(url: str, i: int, results: dict[int, tuple[str, float]]) -> None:
    with grpcclient.InferenceServerClient(url) as client:
        x = grpcclient.InferInput("X", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[i]], np.float32))
        try:
            client.infer("pipeline", [x], client_timeout=60)
            results[i] = ("ok", time.monotonic())
        except InferenceServerException as exc:
            results[i] = (f"{exc.status()} {exc.message()}", time.monotonic())


@pytest.mark.server
def test_beyond_inflight_and_queued_requests_are_answered_at_once_and_the_rest_drain(
    tmp_path: Path,
) -> None:
    repo = pipeline_repository(tmp_path / "repo", first_step_delay_s=2.0)
    log = tmp_path / "access.log"
    server = TritonServer(
        repo, max_inflight=2, max_queued=2, exit_timeout_s=30, shedder_access_log=log
    ).start()
    results: dict[int, tuple[str, float]] = {}
    threads = []
    for i in range(10):
        threads.append(threading.Thread(target=_call, args=(server.grpc_url, i, results)))
        threads[-1].start()
        time.sleep(0.05)  # arrival order: the first four get the slots and the queue
    time.sleep(0.5)  # all ten arrived; the first two are in the slow first step
    code = server.stop()  # drain: what is inside Triton or queued in front finishes
    for thread in threads:
        thread.join(timeout=60)
    ok = sorted(i for i, (outcome, _) in results.items() if outcome == "ok")
    rejected = {i: r for i, r in results.items() if r[0] != "ok"}
    assert ok == [0, 1, 2, 3], {i: results[i] for i in (2, 3)}
    assert sorted(rejected) == [4, 5, 6, 7, 8, 9]
    assert all("UNAVAILABLE" in r[0] and OVERLOADED_MESSAGE in r[0] for r in rejected.values())
    # answered at once: before any accepted request could finish its 2 s first step
    assert max(t for _, t in rejected.values()) < min(results[i][1] for i in ok)
    assert code == 0
    # the access log tells the same story from the server's side: 4 served, 6 shed at once
    records = read_access_log(log)
    served = sorted(r.total_ms for r in records if not r.shed)
    shed = [r for r in records if r.shed]
    assert len(served) == 4 and len(shed) == 6, records
    assert served[0] >= 2000 and all(r.total_ms < 1000 and r.status == 200 for r in shed)


def test_with_access_log_adds_exactly_what_render_config_would() -> None:
    common: dict[str, object] = {
        "listen": ("0.0.0.0", 8001),
        "upstream": ("127.0.0.1", 8011),
        "max_inflight": 16,
        "max_queued": 8,
        "metrics": ("0.0.0.0", 8404),
        "max_connection_age_ms": 30000,
        "max_connection_age_grace_ms": 10000,
    }
    plain = render_config(**common)  # type: ignore[arg-type]
    assert with_access_log(plain) == render_config(access_log=True, **common)  # type: ignore[arg-type]
    assert shedder_bounds(plain) == (16, 8)
    moved = retarget(
        plain, listen=("127.0.0.1", 1), upstream=("127.0.0.1", 2), metrics=("127.0.0.1", 3)
    )
    assert moved == render_config(  # type: ignore[arg-type]
        **(
            common
            | {
                "listen": ("127.0.0.1", 1),
                "upstream": ("127.0.0.1", 2),
                "metrics": ("127.0.0.1", 3),
            }
        )
    )
    with pytest.raises(ValueError):
        retarget(plain, listen=("127.0.0.1", 1), upstream=("127.0.0.1", 2))  # stats listener left
