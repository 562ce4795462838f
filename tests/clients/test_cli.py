"""``tdeploy infer`` / ``tdeploy health`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from clienttools import digit_images, impressions
from typer.testing import CliRunner

from triton_deploy.cli_client import health, infer
from triton_deploy.runtime.server import free_port

app = typer.Typer()
app.command()(infer)
app.command()(health)
runner = CliRunner()


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
