"""A full rollout under constant Locust load, end to end (see harness.py for what is real).

Blue serves version 1 of the tiny model, green version 2, each on its own real tritonserver
started from what its Deployment says; HAProxy in TCP mode is the Service; Locust users call
the active Service through the project's client and log every answer. Checked:

- good version 2: zero failed requests, every answer correct for the version that gave it,
  traffic fully on green within the server's max connection age + grace after the switch, and
  blue only stopped once no client used it;
- bad version 2 (fails every request with an input above 0.9, while its golden cases pass):
  the post-promotion analysis sees Triton's failure counters rise and switches back by itself;
  failures stop within the analysis window plus max connection age + grace, and blue never
  stopped serving.

The measured times are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness import AGE_S, CHART, GRACE_S, RELEASE, RolloutCluster, bad_repository, write_golden
from locustload import run_under_load

pytestmark = pytest.mark.server

# gRPC adds up to +10 % jitter to the max connection age; the adapter polls every 0.15 s and a
# busy 2-core machine delays the GOAWAY handling and the logging a little.
MOVE_BOUND_S = AGE_S * 1.1 + GRACE_S + 1.5


def switch_time(cluster: RolloutCluster, color: str, after: float = 0.0) -> float:
    return next(
        t for t, role, c in cluster.proxy.switches if role == "active" and c == color and t > after
    )


def rollout(
    cluster: RolloutCluster, uri: str, golden: Path, window: str
) -> subprocess.CompletedProcess[str]:
    return cluster.tdeploy(
        "rollout", "--release", RELEASE, "--chart", str(CHART), "--model-repository", uri,
        "--golden", str(golden), "--preview-url", cluster.proxy.url("preview"),
        "--analysis-window", window, "--analysis-interval", "1s", "--min-requests", "20",
        "--max-error-ratio", "0.01", "--ready-timeout", "120s", "--abort-scale-down-delay", "1s",
        "--json",
    )  # fmt: skip


def test_rollout_under_load_moves_every_client_without_a_failed_request(
    cluster: RolloutCluster, golden_v2: Path, tmp_path: Path
) -> None:
    blue_pid = cluster.kubelet.ready_server("blue").pid  # type: ignore[union-attr]
    result, answers, started, finished = run_under_load(
        cluster,
        cluster.proxy.url("active"),
        tmp_path,
        lambda: rollout(cluster, "s3://models/v2", golden_v2, window="8s"),
        settle_s=2,
        run_time="600s",
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(result.stdout)
    post = next(c for c in data["checks"] if c["name"] == "post-promotion")
    assert post["status"] == "passed" and post["numbers"]["requests"] >= 20, post

    failed = [a for a in answers if not a.ok]
    assert not failed, failed[:5]
    switched = switch_time(cluster, "green")
    last_blue = max(a.t for a in answers if a.version == 1.0)
    first_green = min(a.t for a in answers if a.version == 2.0)
    assert [a.version for a in answers if a.t > switched + MOVE_BOUND_S] == [
        2.0 for a in answers if a.t > switched + MOVE_BOUND_S
    ]
    assert last_blue - switched <= MOVE_BOUND_S
    blue_stopped = next(t for t, color in cluster.kubelet.stops if color == "blue")
    assert blue_stopped > last_blue
    assert not any(c == "blue" for _, c in cluster.kubelet.stops if _ < switched)
    print(
        f"\n[rollout under load] {len(answers)} answers, 0 failed; rollout took "
        f"{finished - started:.1f} s; active Service switched to green at +{switched - started:.1f} s; "
        f"first green answer {first_green - switched:+.2f} s, last blue answer "
        f"{last_blue - switched:+.2f} s after the switch (bound {MOVE_BOUND_S:.2f} s = max age "
        f"{AGE_S} s x 1.1 + grace {GRACE_S} s + 1.5 s); blue stopped "
        f"{blue_stopped - switched:.1f} s after the switch; blue pid {blue_pid}"
    )


def test_bad_version_switches_back_by_itself_and_blue_never_stops(
    cluster: RolloutCluster, repositories: dict[str, Path], tmp_path: Path
) -> None:
    bad = bad_repository(tmp_path / "bad" / "model_repository", 2)
    cluster.repositories["s3://models/v2-bad"] = bad
    write_golden(bad, 2)  # its golden case stays below 0.9: parity passes
    blue = cluster.kubelet.ready_server("blue")
    assert blue is not None
    window = 20.0
    result, answers, started, finished = run_under_load(
        cluster,
        cluster.proxy.url("active"),
        tmp_path,
        lambda: rollout(cluster, "s3://models/v2-bad", bad, window=f"{window:g}s"),
        settle_s=2,
        run_time="600s",
    )
    assert result.returncode == 4, result.stderr[-4000:]
    data = json.loads(result.stdout)
    assert data["result"] == "switched-back"
    assert {c["name"]: c["status"] for c in data["checks"]}["parity"] == "passed"
    assert "error ratio" in data["message"]
    assert "switched back" in result.stderr

    promoted = switch_time(cluster, "green")
    back = switch_time(cluster, "blue", after=promoted)
    failures = [a for a in answers if a.version is None]
    assert failures, "the bad version failed no request: the test proves nothing"
    assert all(promoted <= a.t for a in failures)
    last_failure = max(a.t for a in failures)
    assert last_failure - promoted <= window + MOVE_BOUND_S
    assert last_failure - back <= MOVE_BOUND_S
    wrong = [a for a in answers if a.version is not None and not a.ok]
    assert not wrong, wrong[:5]
    # Blue served throughout: the same process, never stopped, answering after the switch back.
    assert cluster.kubelet.ready_server("blue") is blue and blue.pid is not None
    assert not any(color == "blue" for _, color in cluster.kubelet.stops)
    assert any(a.version == 1.0 for a in answers if a.t > back + MOVE_BOUND_S)
    assert cluster.values()["activeColor"] == "blue"
    print(
        f"\n[bad version under load] {len(answers)} answers, {len(failures)} failed (all on "
        f"green); rollout took {finished - started:.1f} s; promoted at +{promoted - started:.1f} s, "
        f"switched back {back - promoted:.1f} s later (analysis every 1 s, window {window:g} s); "
        f"last failure {last_failure - back:+.2f} s after the switch back (bound "
        f"{MOVE_BOUND_S:.2f} s)"
    )
