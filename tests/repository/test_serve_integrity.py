"""`tdeploy serve` checks every file against the manifest before tritonserver starts: a changed
weight file, a changed config, a deleted file and an added file each refuse with the file named;
an untouched (or signed, with --require-signature) repository serves on the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from keys import key_pair
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.repository import MANIFEST, sign_repository
from triton_deploy.runtime.server import free_port

TDEPLOY = str(Path(sys.executable).with_name("tdeploy"))


def _serve(repository: Path, *args: str) -> tuple[int, str]:
    """`tdeploy serve` in its own process: (exit code, output) once it exits or is ready (then
    it is stopped with SIGINT)."""
    command = [
        TDEPLOY, "serve", "--repository", str(repository), "--grpc-port", str(free_port()),
        "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--max-inflight", "0", *args,
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"COLUMNS": "250"},
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("  stop:"):
                process.send_signal(signal.SIGINT)
                break
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, "".join(lines) + rest


def _refused(repository: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["serve", "--repository", str(repository), *args])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def _change_weight(repository: Path) -> str:
    path = repository / "price/1/xgboost.json"
    path.write_text(path.read_text().replace('"base_score":', '"base_score": ', 1))
    return "price/1/xgboost.json"


def _change_config(repository: Path) -> str:
    path = repository / "pair/config.pbtxt"
    path.write_text(path.read_text() + "# edited by hand\n")
    return "pair/config.pbtxt"


def _delete(repository: Path) -> str:
    (repository / "pair/1/model.onnx").unlink()
    return "pair/1/model.onnx"


def _add(repository: Path) -> str:
    (repository / "price/1/model.txt").write_text("tree\n")
    return "price/1/model.txt"


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (_change_weight, "changed since the build (manifest sha256"),
        (_change_config, "changed since the build (manifest sha256"),
        (_delete, "missing (manifest sha256"),
        (_add, "not made by the build (file sha256"),
    ],
)
def test_serve_refuses_a_tampered_repository_naming_the_file(
    repository: Path, tamper: object, problem: str
) -> None:
    assert callable(tamper)
    name = tamper(repository)
    output = _refused(repository)
    assert f"{name}: {problem}" in output
    assert output.startswith("error:")


@pytest.mark.server
def test_an_untouched_repository_serves(repository: Path) -> None:
    code, output = _serve(repository)
    assert code == 0, output
    assert "ready: 2 models" in output
    assert "files match the manifest (sha256:" in output


@pytest.mark.server
def test_allow_unverified_serves_with_a_warning(repository: Path) -> None:
    name = _change_config(repository)
    code, output = _serve(repository, "--allow-unverified")
    assert code == 0, output
    assert "--allow-unverified: serving" in output and name in output
    assert "ready: 2 models" in output


@pytest.mark.server
def test_a_repository_without_manifest_serves_with_a_warning(repository: Path) -> None:
    (repository / MANIFEST).unlink()
    code, output = _serve(repository)
    assert code == 0, output
    assert "has no build manifest" in " ".join(output.split())


@pytest.mark.server
def test_require_signature(repository: Path, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "release")
    _, other = key_pair(tmp_path, "other")
    options = ["--require-signature", "--public-key", str(public)]
    assert "not signed" in _refused(repository, *options)
    sign_repository(repository, private_key=private)
    assert "does not verify" in _refused(
        repository, "--require-signature", "--public-key", str(other)
    )
    code, output = _serve(repository, *options)
    assert code == 0, output
    assert "signature verified (public key)" in " ".join(output.split())
    name = _change_weight(repository)
    assert name in _refused(repository, *options, "--allow-unverified")
