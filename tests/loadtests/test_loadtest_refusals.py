"""Bad files and options stop a run before it starts, with file, key and reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.loadtests import LOCUSTFILE

BAD_SLO = "models:\n  digits: {p95_ms: 20, p99_ms: -1}\n"

runner = CliRunner()


def locust(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo-file", "{bad}"], "{bad}: models.digits.p99_ms: Input should be greater than 0"),
        (["--mix-file", "/no/such/mix.yaml"], "task mix file /no/such/mix.yaml: no such file"),
        (["--target-env", "prod"], "loadtests/slo/prod.yaml: no such file"),
        (["--load-shape", "step"], "--load-shape step needs --run-time"),
        (["--grpc-ca", "/no/ca.pem", "-t", "5s"], "--grpc-ca: no such file '/no/ca.pem'"),
    ],
)
def test_locust_refuses_to_start(tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SLO)
    args = [a.replace("{bad}", str(bad)) for a in args]
    # Nothing listens on port 1: a run that started would fail every request instead.
    done = locust("--host", "127.0.0.1:1", *args)
    assert done.returncode == 2, done.stderr
    assert message.replace("{bad}", str(bad)) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Ramping to" not in done.stderr  # no user was started


def test_locust_refuses_a_url_for_host() -> None:
    done = locust("--host", "http://127.0.0.1:8001", "-t", "5s")
    assert done.returncode == 2
    assert "--host takes host:port of Triton's gRPC endpoint" in done.stderr


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


def test_cli_checks_the_slo_file_before_starting_a_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SLO)
    result = runner.invoke(
        app, ["loadtest", "--slo", str(bad), "--repository", str(tmp_path / "none")]
    )
    assert result.exit_code == 1, result.output
    line = one_line_error(result.output)
    assert str(bad) in line and "models.digits.p99_ms" in line and "greater than 0" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shape", "wave"], "--shape must be one of constant, step, spike"),
        (["--header", "no-equals-sign"], "--header takes NAME=VALUE"),
        (["--run-time", "soon"], "--run-time takes e.g. 30s"),
        (["--shape", "spike", "--spike-baseline", "2"], "--spike-baseline must be a fraction"),
        (["--ca", "/no/ca.pem", "--host", "h:1"], "--ca: no such file"),
    ],
)
def test_cli_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["loadtest", *args, "--repository", str(tmp_path / "none")])
    assert result.exit_code == 1, result.output
    assert message in one_line_error(result.output)


def test_without_locust_loadtest_is_listed_and_says_what_to_install() -> None:
    """It used to vanish from `tdeploy --help` on any ImportError."""
    code = (
        "import sys\n"
        "sys.modules['locust'] = None  # as if the loadtest extra were not installed\n"
        "from triton_deploy.cli import main\n"
        "sys.argv = ['tdeploy', *sys.argv[1:]]\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    listed = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0 and " loadtest " in listed.stdout, listed.stdout
    done = subprocess.run(
        [sys.executable, "-c", code, "loadtest"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        "error: tdeploy loadtest needs the loadtest extra: pip install 'triton-deploy[loadtest]'"
    ), done.stderr


def test_the_bearer_token_and_headers_reach_every_users_client() -> None:
    """--grpc-token / TDEPLOY_TOKEN and --grpc-header become the users' client metadata (run in
    a child: importing the user module monkey-patches the process for gevent)."""
    code = (
        "import locust, json, types\n"
        "from triton_deploy.loadtests.grpc_user import client_options\n"
        "options = types.SimpleNamespace(grpc_token='s3cret', grpc_header='X-Team=ads,b=2',\n"
        "    grpc_timeout=2.5, grpc_tls=True, grpc_ca='', grpc_cert='', grpc_key='')\n"
        "print(json.dumps(client_options(options)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout.strip().splitlines()[-1])
    assert options["headers"] == {"x-team": "ads", "b": "2", "authorization": "Bearer s3cret"}
    assert options["timeout"] == 2.5 and options["ssl"] is True
    assert options["root_certificates"] is None
