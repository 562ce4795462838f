"""A small repository built by the real build (an ONNX model and an XGBoost model), once per
session; tests tamper with copies of it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "build"))
from usermodels import make_two_input_onnx, make_xgboost_regression_json, spec_entry

from triton_deploy.build.pipeline import build_repository
from triton_deploy.build.spec import load_spec


@pytest.fixture(scope="session")
def built_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("small")
    models = [make_two_input_onnx(base), make_xgboost_regression_json(base)]
    spec = {"models": [spec_entry(m, base) for m in models]}
    (base / "models.yaml").write_text(yaml.safe_dump(spec))
    out = base / "model_repository"
    report = build_repository(
        load_spec(base / "models.yaml"), out, console=Console(stderr=True, quiet=True)
    )
    assert report.swapped and not report.failed, [(r.model, r.detail) for r in report.failed]
    return out


@pytest.fixture
def repository(built_repository: Path, tmp_path: Path) -> Path:
    """A fresh copy of the small repository (files only, as `aws s3 sync` would copy them)."""
    copy = tmp_path / "repository"
    shutil.copytree(built_repository, copy, copy_function=shutil.copyfile)
    return copy
