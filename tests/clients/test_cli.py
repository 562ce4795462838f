"""``tdeploy infer`` / ``tdeploy health`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clienttools import digit_images, impressions
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.runtime.server import free_port

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
SAMPLE_IMPRESSIONS = ROOT / "build" / "examples" / "ctr" / "impressions.json"


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


def test_infer_needs_exactly_one_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["infer", "digits", "--url", "127.0.0.1:1"])
    assert result.exit_code == 1
    assert "--input" in one_line_error(result.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "IMAGES"], "NAME=FILE.npy"),
        (["--input", "IMAGES=/no/such.npy"], "no such file"),
        (["--impressions", "/no/such.json"], "no such file"),
    ],
)
def test_infer_input_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["infer", "digits", "--url", "127.0.0.1:1", *args])
    assert result.exit_code == 1
    assert message in one_line_error(result.output)


def test_health_of_a_server_that_is_not_there() -> None:
    url = f"127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["health", "--url", url, "--timeout", "0.5", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output.splitlines()[0])
    assert report["ok"] is False and report["live"] is False and report["error"]


def test_url_from_the_environment() -> None:
    url = f"127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["health", "--json", "--timeout", "0.5"], env={"TDEPLOY_URL": url})
    assert json.loads(result.output.splitlines()[0])["url"] == url


@pytest.mark.server
def test_infer_digits_from_npy(grpc_url: str, tmp_path: Path) -> None:
    images = tmp_path / "images.npy"
    np.save(images, digit_images(70))  # more than max_batch_size
    result = runner.invoke(app, ["infer", "digits", "-i", f"IMAGES={images}", "--url", grpc_url])
    assert result.exit_code == 0, result.output
    assert "LABELS" in result.output and "PROBS" in result.output and "70 rows" in result.output
    assert "50 more rows" in result.output
    result = runner.invoke(
        app, ["infer", "digits", "-i", f"IMAGES={images}", "--url", grpc_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["outputs"]["LABELS"]["shape"] == [70, 3]
    assert len(data["outputs"]["PROBS"]["data"]) == 70


@pytest.mark.server
def test_the_readme_example_runs_on_the_shipped_sample(grpc_url: str) -> None:
    """README: `tdeploy infer ctr --impressions build/examples/ctr/impressions.json`."""
    readme = "\n".join(  # the README and the documentation guides it links to
        p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs/guides").glob("*.md"))]
    )
    assert "tdeploy infer ctr --impressions build/examples/ctr/impressions.json" in readme
    records = json.loads(SAMPLE_IMPRESSIONS.read_text())
    result = runner.invoke(
        app, ["infer", "ctr", "--impressions", str(SAMPLE_IMPRESSIONS), "--url", grpc_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    probs = json.loads(result.output)["outputs"]["CLICK_PROB"]["data"]
    assert len(probs) == len(records) >= 3 and all(0 < p[0] < 1 for p in probs)


@pytest.mark.server
def test_infer_ctr_from_impressions(grpc_url: str, tmp_path: Path) -> None:
    path = tmp_path / "impressions.json"
    path.write_text(json.dumps(impressions(5)))
    result = runner.invoke(
        app, ["infer", "ctr", "--impressions", str(path), "--url", grpc_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    probs = json.loads(result.output)["outputs"]["CLICK_PROB"]["data"]
    assert len(probs) == 5 and all(0 < p[0] < 1 for p in probs)
    result = runner.invoke(app, ["infer", "ctr", "--impressions", str(path), "--url", grpc_url])
    assert result.exit_code == 0 and "CLICK_PROB" in result.output


@pytest.mark.server
def test_infer_errors_are_one_line(grpc_url: str, tmp_path: Path) -> None:
    path = tmp_path / "impressions.json"
    records = impressions(2)
    del records[1]["country"]
    path.write_text(json.dumps(records))
    result = runner.invoke(app, ["infer", "ctr", "--impressions", str(path), "--url", grpc_url])
    assert result.exit_code == 1
    assert "record 1 has no field 'country'" in one_line_error(result.output)
    images = tmp_path / "images.npy"
    np.save(images, digit_images(1).astype(np.float32))
    result = runner.invoke(app, ["infer", "digits", "-i", f"IMAGES={images}", "--url", grpc_url])
    assert result.exit_code == 1 and "expected dtype UINT8" in one_line_error(result.output)
    result = runner.invoke(app, ["infer", "nope", "-i", f"x={images}", "--url", grpc_url])
    assert result.exit_code == 1 and "NOT_FOUND" in one_line_error(result.output)


@pytest.mark.server
def test_health_of_the_server(grpc_url: str) -> None:
    result = runner.invoke(app, ["health", "--url", grpc_url, "--models", "digits,ctr"])
    assert result.exit_code == 0, result.output
    assert "model digits ready" in result.output and "model ctr ready" in result.output
    result = runner.invoke(
        app, ["health", "--url", grpc_url, "-m", "digits", "-m", "nope", "--json"]
    )
    assert result.exit_code == 1
    report = json.loads(result.output.splitlines()[0])
    assert report["models"] == {"digits": True, "nope": False}
    assert result.output.splitlines()[-1].startswith("error: ")
    result = runner.invoke(app, ["health", "--url", grpc_url, "-m", "nope", "--wait", "0.6"])
    assert result.exit_code == 1 and "models not ready: nope" in result.output


def test_headers_and_token_from_one_environment_variable_each() -> None:
    from triton_deploy.cli_options import connection

    env = {"TDEPLOY_HEADERS": "x-a=1, authorization=Bearer overridden"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        options = connection(1.0, None, "t0k3n", False, None, None, None)
        assert options["headers"] == {"x-a": "1", "authorization": "Bearer t0k3n"}
        # given on the command line, -H replaces the environment's list
        assert connection(1.0, ["x-b=2"], None, False, None, None, None)["headers"] == {"x-b": "2"}
        patch.setenv("TDEPLOY_HEADERS", "no-equals")
        with pytest.raises(Exception, match="TDEPLOY_HEADERS takes NAME=VALUE"):
            connection(1.0, None, None, False, None, None, None)


def test_every_command_fails_with_one_error_line(tmp_path: Path) -> None:
    """One error exit for every command: build, verify, infer, health, loadtest."""
    import numpy as np

    from triton_deploy.build.golden import GoldenCase, golden_case_path

    nowhere = f"127.0.0.1:{free_port()}"
    repository = tmp_path / "model_repository"
    (repository / "m").mkdir(parents=True)
    one = {"x": np.zeros((1, 2), np.float32)}
    GoldenCase(one, one).save(golden_case_path(repository, "m"))
    cases = [
        (["build", "--spec", "/no/such/models.yaml"], "/no/such/models.yaml"),
        (
            [
                "verify",
                "--url",
                nowhere,
                "--timeout",
                "0.5",
                "--repository",
                str(repository),
                "--model",
                "nope",
            ],
            "no golden case for ['nope']",
        ),
        (["verify", "--url", nowhere, "--timeout", "0.5", "--key", "/no/key.pem"], "--key"),
        (["infer", "m", "--url", nowhere, "-i", "x"], "--input takes NAME=FILE.npy"),
        (["health", "--url", nowhere, "-H", "bad header=1"], "not a valid gRPC metadata key"),
        (["loadtest", "--shape", "wave"], "--shape must be one of constant, step, spike"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in one_line_error(result.output), (args, result.output)
