"""Short headless load tests against the real local tritonserver (the session's server).

Each run is a few seconds of load; the verdict, the summary and the reports are checked
against locust's own stats CSV, not against expectations of how fast this machine is.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tlstools import make_tls_files

from triton_deploy.loadtests import EXIT_SLO_VIOLATED, LOCUSTFILE, run_loadtest
from triton_deploy.runtime.server import TritonServer, free_port

pytestmark = pytest.mark.server

# Any working server meets these, however busy the machine is.
GENEROUS = """\
environment: test
models:
  digits: {p50_ms: 5000, p99_ms: 10000, max_error_ratio: 0.01, min_rps: 1}
  digits_cnn: {p99_ms: 10000, max_error_ratio: 0.01}
  ctr: {p50_ms: 5000, p99_ms: 10000, max_error_ratio: 0.01, min_rps: 1}
total: {max_error_ratio: 0.01, min_rps: 2}
"""
# No server meets these.
IMPOSSIBLE = """\
environment: test
models:
  digits: {p99_ms: 0.001}
  ctr: {max_error_ratio: 0.5}
total: {min_rps: 1.0e9}
"""


def stats_rows(prefix: Path) -> dict[str, dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def final_percentiles(output: str) -> dict[str, dict[str, str]]:
    """Per model, locust's own end-of-run percentile table (printed from the same final
    numbers as our verdict; the stats CSV is a snapshot taken up to a second earlier)."""
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Response time percentiles"))
    header = lines[start + 1].split()[:-2]  # Type, Name, 50%, ..., 100% (then "# reqs")
    table = {}
    for line in lines[start + 3 :]:
        cells = line.split()
        if cells and cells[0] == "grpc":
            table[cells[1]] = dict(zip(header, cells, strict=False))
    return table


def final_total_rps(output: str) -> float:
    """req/s of the Aggregated row in locust's final stats table."""
    lines = output.splitlines()
    line = [row for row in lines if row.strip().startswith("Aggregated") and "|" in row][-1]
    return float(line.split("|")[-1].split()[0])


def summary(output: str) -> list[str]:
    lines = output.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("SLO check"))
    return lines[start:]


def test_passing_slo_exits_0_and_writes_every_report(
    triton_server: TritonServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    slo = tmp_path / "slo.yaml"
    slo.write_text(GENEROUS)
    result = run_loadtest(
        host=triton_server.grpc_url,
        slo_file=slo,
        users=6,
        spawn_rate=6,
        run_time="6s",
        reports=tmp_path / "reports",
    )
    captured = capfd.readouterr()
    output = captured.err + captured.out  # locust logs its tables to stderr, we print to stdout
    assert result.exit_code == 0, output
    table = summary(output)
    assert table[-1] == "SLO passed: all 13 thresholds met", "\n".join(table)

    rows = stats_rows(result.csv_prefix)
    assert set(rows) == {"digits", "digits_cnn", "ctr", "Aggregated"}
    for name in ("digits", "digits_cnn", "ctr"):
        assert rows[name]["Type"] == "grpc"
        assert int(rows[name]["Request Count"]) > 0
        assert int(rows[name]["Failure Count"]) == 0
        assert float(rows[name]["Average Content Size"]) > 0  # bytes of the decoded outputs
    # The summary reports locust's own numbers.
    p50 = next(line for line in table if line.split()[0] == "models.digits.p50_ms")
    assert p50.split()[4:6] == [final_percentiles(output)["digits"]["50%"], "ms"], p50

    assert result.html.is_file() and "digits" in result.html.read_text()
    assert result.history_csv.is_file()
    assert result.png is not None and result.png.read_bytes()[:4] == b"\x89PNG"


def test_impossible_slo_exits_non_zero_naming_threshold_and_measured_value(
    triton_server: TritonServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    slo = tmp_path / "impossible.yaml"
    slo.write_text(IMPOSSIBLE)
    result = run_loadtest(
        host=triton_server.grpc_url,
        slo_file=slo,
        users=4,
        spawn_rate=4,
        run_time="5s",
        reports=tmp_path / "reports",
    )
    captured = capfd.readouterr()
    output = captured.err + captured.out  # locust logs its tables to stderr, we print to stdout
    assert result.exit_code == EXIT_SLO_VIOLATED, output
    table = summary(output)
    text = "\n".join(table)

    p99 = re.search(r"^  models\.digits\.p99_ms +<= 0\.001 ms +(\d+) ms +FAIL$", text, re.M)
    assert p99 is not None, text
    assert p99.group(1) == final_percentiles(output)["digits"]["99%"]

    rps = re.search(r"^  total\.min_rps +>= 1e\+09 req/s +([\d.]+) req/s +FAIL$", text, re.M)
    assert rps is not None, text
    assert float(rps.group(1)) == pytest.approx(final_total_rps(output), abs=0.051)

    assert re.search(r"^  models\.ctr\.max_error_ratio +<= 50 % +0 % +pass$", text, re.M), text
    assert table[-1] == (
        "SLO FAILED: 2 of 4 thresholds violated: models.digits.p99_ms, total.min_rps"
    ), text


def test_distributed_run_one_master_one_worker(triton_server: TritonServer, tmp_path: Path) -> None:
    """Same locustfile on both; the master's options (here: the staging task mix, which never
    calls digits_cnn) reach the worker; the master gates on the worker's numbers. 12 s: a
    worker loads its mix after it connected (8 s on a busy machine), and the run's clock runs
    from the master's start."""
    slo = tmp_path / "slo.yaml"
    slo.write_text(GENEROUS.replace("  digits_cnn: {p99_ms: 10000, max_error_ratio: 0.01}\n", ""))
    port = free_port()
    prefix = tmp_path / "distributed"
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    env = {**os.environ, "TDEPLOY_LOADTEST_ENV": "local"}  # the worker's own default
    worker = subprocess.Popen(
        [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        master_options = (
            f"--master --master-bind-host 127.0.0.1 --master-bind-port {port} "
            "--expect-workers 1 --expect-workers-max-wait 60 --headless --only-summary "
            f"-u 4 -r 4 -t 12s --host {triton_server.grpc_url} --target-env staging"
        ).split()
        master = subprocess.run(
            [*locust, *master_options, "--slo-file", str(slo), "--csv", str(prefix)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        worker_output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert master.returncode == 0, master.stdout + master.stderr
    assert worker.returncode == 0, worker_output
    assert "SLO passed" in master.stdout, master.stdout
    rows = stats_rows(prefix)
    assert set(rows) == {"digits", "ctr", "Aggregated"}, rows.keys()
    assert int(rows["Aggregated"]["Request Count"]) > 0
    assert "Traceback" not in worker_output and "ERROR" not in worker_output, worker_output


GOLDEN_MIX = """\
think_time_s: [0.0, 0.02]
workloads:
  any_model:
    golden: ctr_xgb
    options: {batch_size: [1, 16]}
"""
GOLDEN_SLO = """\
models:
  ctr_xgb: {p99_ms: %s, max_error_ratio: 0.01}
"""


@pytest.mark.parametrize(("p99_ms", "exit_code"), [("10000", 0), ("0.001", EXIT_SLO_VIOLATED)])
def test_tdeploy_loadtest_drives_any_model_from_its_golden_cases(
    triton_server: TritonServer,
    model_repository: Path,
    tmp_path: Path,
    p99_ms: str,
    exit_code: int,
) -> None:
    """The CLI's exit code is the verdict (0 met, 3 violated), for a model the load test
    knows nothing about: rows of the golden cases its build kept."""
    from typer.testing import CliRunner

    from triton_deploy.cli import app

    (tmp_path / "mix.yaml").write_text(GOLDEN_MIX)
    (tmp_path / "slo.yaml").write_text(GOLDEN_SLO % p99_ms)
    result = CliRunner().invoke(
        app,
        ["loadtest", "--host", triton_server.grpc_url, "--env", "golden",
         "--mix", str(tmp_path / "mix.yaml"), "--slo", str(tmp_path / "slo.yaml"),
         "--repository", str(model_repository), "-u", "3", "-r", "3", "-t", "4s",
         "--reports", str(tmp_path / "reports")],
    )  # fmt: skip
    assert result.exit_code == exit_code, result.output
    rows = stats_rows(tmp_path / "reports" / "golden")
    assert set(rows) == {"ctr_xgb", "Aggregated"}, rows.keys()
    assert int(rows["ctr_xgb"]["Request Count"]) > 0
    assert int(rows["ctr_xgb"]["Failure Count"]) == 0


@pytest.fixture(scope="module")
def tls_server(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TritonServer, dict[str, Path]]]:
    """A server that wants mutual TLS, and a header on inference calls (Triton's restricted
    protocols: it expects ``triton-grpc-protocol-<key>: <value>``)."""
    tls = make_tls_files(tmp_path_factory.mktemp("tls"))
    d = tls["ca_crt"].parent
    files = {"ca": d / "ca.crt", "cert": d / "client.crt", "key": d / "client.key"}
    args = [
        "--grpc-use-ssl-mutual=true",
        f"--grpc-server-cert={d / 'server.crt'}",
        f"--grpc-server-key={d / 'server.key'}",
        f"--grpc-root-cert={d / 'ca.crt'}",
        "--grpc-restricted-protocol=inference:loadtest-key=s3cret",
    ]
    with TritonServer(model_repository, extra_args=args) as server:
        yield server, files


@pytest.mark.parametrize("with_header", [True, False])
def test_mutual_tls_and_auth_metadata(
    tls_server: tuple[TritonServer, dict[str, Path]],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    with_header: bool,
) -> None:
    server, files = tls_server
    slo = tmp_path / "slo.yaml"
    slo.write_text(GENEROUS)
    headers = ["triton-grpc-protocol-loadtest-key=s3cret"] if with_header else []
    result = run_loadtest(
        host=server.grpc_url,
        slo_file=slo,
        users=2,
        spawn_rate=2,
        run_time="6s",
        reports=tmp_path / "reports",
        ca=files["ca"],
        cert=files["cert"],
        key=files["key"],
        headers=headers,
        grpc_timeout=2.0,
    )
    captured = capfd.readouterr()
    text = "\n".join(summary(captured.err + captured.out))
    if with_header:
        assert result.exit_code == 0, text
        return
    # Refused by the server: every call fails with PermissionDenied, and the gate says so.
    assert result.exit_code == EXIT_SLO_VIOLATED, text
    ratio = r"^  models\.digits\.max_error_ratio +<= 1 % +100 % +FAIL$"
    assert re.search(ratio, text, re.M), text
    failures = Path(f"{result.csv_prefix}_failures.csv").read_text()
    assert "PermissionDenied" in failures or "restricted" in failures, failures
