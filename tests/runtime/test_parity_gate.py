"""Models whose build manifest says parity FAILED are not served unless asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.runtime.repository import failed_parity
from triton_deploy.runtime.server import TritonServer


def _repository_with_failed_parity(source: Path, destination: Path) -> Path:
    """Every model of the example repository; the manifest says ctr_xgb failed parity."""
    shutil.copytree(source, destination, symlinks=True)
    path = destination / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["models"]["ctr_xgb"]["status"] = "FAIL"
    manifest["models"]["ctr_xgb"]["parity"] |= {"passed": False, "max_abs_diff": 0.25}
    path.write_text(json.dumps(manifest))
    return destination


def test_failed_parity_is_read_from_the_manifest(model_repository: Path, tmp_path: Path) -> None:
    assert failed_parity(model_repository) == {}
    repo = _repository_with_failed_parity(model_repository, tmp_path / "repo")
    refused = failed_parity(repo)
    assert list(refused) == ["ctr_xgb"]
    assert "parity FAILED in the build (max abs diff 0.25 over atol" in refused["ctr_xgb"]
    assert "--allow-failed-parity" in refused["ctr_xgb"]
    (repo / "manifest.json").write_text("{not json")
    with pytest.raises(Exception, match="not a valid build manifest"):
        failed_parity(repo)


@pytest.mark.server
def test_serve_leaves_out_failed_models_and_their_ensembles_unless_asked(
    model_repository: Path, tmp_path: Path
) -> None:
    repo = _repository_with_failed_parity(model_repository, tmp_path / "repo")
    with TritonServer(repo) as server:
        assert "ctr_xgb" not in server.loaded and "ctr" not in server.loaded
        assert "parity FAILED" in server.skipped["ctr_xgb"]
        assert server.skipped["ctr"] == "ensemble step model 'ctr_xgb' is skipped"
        assert "digits" in server.loaded
    with TritonServer(repo, allow_failed_parity=True) as server:
        assert {"ctr_xgb", "ctr"} <= set(server.loaded)


@pytest.mark.server
def test_serve_cli_names_the_refused_models(model_repository: Path, tmp_path: Path) -> None:
    repo = _repository_with_failed_parity(model_repository, tmp_path / "repo")
    for model in list(json.loads((repo / "manifest.json").read_text())["models"]):
        if model != "ctr_xgb":
            shutil.rmtree(repo / model)
    result = CliRunner().invoke(
        app,
        # the models removed by hand are files missing from the manifest: served anyway
        [
            "serve",
            "--repository",
            str(repo),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--allow-unverified",
        ],
    )
    assert result.exit_code == 1
    assert "nothing in" in result.output and "ctr_xgb: parity FAILED" in result.output
