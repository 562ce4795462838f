"""A build replaces the repository whole or not at all: interrupted, killed or failed builds
leave the previous repository exactly as it was, and no half-written folder behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from test_byo_errors import tree_digest
from usermodels import make_two_input_onnx, make_xgboost_regression_json

from triton_deploy.build import converters
from triton_deploy.build.pipeline import MANIFEST, build_repository
from triton_deploy.build.spec import load_spec

QUIET = Console(stderr=True, quiet=True)
TDEPLOY = str(Path(sys.executable).parent / "tdeploy")

SLOW_MODEL = """
import os, time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        marker = os.environ.get("TDEPLOY_TEST_MARKER")
        if marker:
            open(marker, "w").close()
            time.sleep(120)

    def execute(self, requests):
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy())])
            for r in requests
        ]
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """A spec (an ONNX model, then a slow Python model) and a repository built from it."""
    make_two_input_onnx(tmp_path)
    (tmp_path / "slow.py").write_text(SLOW_MODEL)
    tensor = {"dtype": "FP32", "dims": [2]}
    spec = {
        "models": [
            {"name": "pair", "source": "pair.onnx", "samples": "pair_samples.npz"},
            {
                "name": "slow",
                "python_model": "slow.py",
                "inputs": [{"name": "x", **tensor}],
                "outputs": [{"name": "y", **tensor}],
            },
        ]
    }
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "model_repository"
    report = build_repository(load_spec(tmp_path / "models.yaml"), out, console=QUIET)
    assert report.swapped and not report.failed
    return tmp_path, out


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_rebuild_leaves_the_previous_repository(
    project: tuple[Path, Path], how: str, tmp_path: Path
) -> None:
    folder, out = project
    before = tree_digest(out)
    # Change the ONNX model so the rebuild writes a new model.onnx before it is stopped.
    make_two_input_onnx(folder, opset=18)
    marker = tmp_path / "slow-started"
    process = subprocess.Popen(
        [TDEPLOY, "build", "--spec", str(folder / "models.yaml"), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "TDEPLOY_TEST_MARKER": str(marker)},
    )
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), process.communicate()
    work = list(out.parent.glob(f".{out.name}.tdeploy-build-*"))
    assert work and (work[0] / "repository/pair/1/model.onnx").is_file()  # mid-build indeed
    process.send_signal(getattr(signal, how))
    _, stderr = process.communicate(timeout=60)
    assert tree_digest(out) == before
    if how == "SIGKILL":
        assert process.returncode == -signal.SIGKILL
        assert list(out.parent.glob(f".{out.name}.tdeploy-build-*"))  # a kill cannot clean up
        # ... the next build does, and still replaces the repository only when it completes.
        report = build_repository(load_spec(folder / "models.yaml"), out, console=QUIET)
        assert report.swapped
        assert not list(out.parent.glob(f".{out.name}.tdeploy-build-*"))
    else:
        assert process.returncode == 130, stderr
        assert "left exactly as it was" in stderr
        assert not list(out.parent.glob(f".{out.name}.tdeploy-build-*"))


def test_a_parity_failure_keeps_the_previous_repository_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_xgboost_regression_json(tmp_path)
    spec_path = tmp_path / "models.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {"models": [{"name": "price", "source": "price.json", "samples": "price_samples.npz"}]}
        )
    )
    out = tmp_path / "repo"
    assert build_repository(load_spec(spec_path), out, console=QUIET).swapped
    before = tree_digest(out)
    # A converter that gets the numbers wrong (stands in for a real conversion bug).
    real = converters.fil_output
    monkeypatch.setattr(converters, "fil_output", lambda *a: real(*a) + np.float32(0.5))
    report = build_repository(load_spec(spec_path), out, force=True, console=QUIET)
    (failed,) = report.failed
    assert failed.model == "price" and "differs from the source" in failed.detail
    assert failed.parity is not None and abs(failed.parity["max_abs_diff"] - 0.5) < 1e-4
    assert not report.swapped and tree_digest(out) == before
    report = build_repository(
        load_spec(spec_path), out, force=True, allow_failed=True, console=QUIET
    )
    assert report.swapped
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["models"]["price"]["status"] == "FAIL"
    assert model.path.is_file()


def test_a_miswired_ensemble_keeps_the_previous_repository(project: tuple[Path, Path]) -> None:
    folder, out = project
    before = tree_digest(out)
    spec = yaml.safe_load((folder / "models.yaml").read_text())
    spec["models"] = spec["models"][:1]
    spec["ensembles"] = [
        {
            "name": "chain",
            "inputs": [
                {"name": "L", "dtype": "FP32", "dims": [4]},
                {"name": "R", "dtype": "INT64", "dims": [4]},
            ],
            "outputs": [{"name": "T", "dtype": "FP32", "dims": [4]}],
            "steps": [
                {"model": "pair", "inputs": {"left": "L", "right": "R"}, "outputs": {"totl": "T"}}
            ],
        }
    ]
    (folder / "wired.yaml").write_text(yaml.safe_dump(spec))
    report = build_repository(load_spec(folder / "wired.yaml"), out, console=QUIET)
    (failed,) = report.failed
    assert failed.model == "chain" and "'totl'" in failed.detail
    assert tree_digest(out) == before


def test_a_changed_model_file_is_rebuilt(tmp_path: Path) -> None:
    make_two_input_onnx(tmp_path)
    spec_path = tmp_path / "models.yaml"
    spec_path.write_text(yaml.safe_dump({"models": [{"name": "pair", "source": "pair.onnx"}]}))
    out = tmp_path / "repo"
    assert build_repository(load_spec(spec_path), out, console=QUIET).swapped
    assert build_repository(load_spec(spec_path), out, console=QUIET).up_to_date
    make_two_input_onnx(tmp_path, opset=18)  # same tensors, other file
    report = build_repository(load_spec(spec_path), out, console=QUIET)
    assert not report.up_to_date and report.swapped
