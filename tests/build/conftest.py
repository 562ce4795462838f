"""Fixtures of the build tests: users' own model files of every format (see usermodels.py)."""

from __future__ import annotations

import pytest
from usermodels import (
    UserModel,
    make_lightgbm,
    make_pt2_mlp,
    make_rank1_onnx,
    make_torchscript,
    make_two_input_onnx,
    make_xgboost_multiclass_ubj,
    make_xgboost_regression_json,
)


@pytest.fixture(scope="session")
def user_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, UserModel]:
    folder = tmp_path_factory.mktemp("user_models")
    made = [
        make_pt2_mlp(folder),
        make_two_input_onnx(folder),
        make_rank1_onnx(folder),
        make_torchscript(folder),
        make_xgboost_multiclass_ubj(folder),
        make_xgboost_regression_json(folder),
        make_lightgbm(folder, classes=2),
        make_lightgbm(folder, classes=3),
    ]
    return {m.name: m for m in made}
