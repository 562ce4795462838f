"""The in-process runner reads the repository's own files with the framework the config names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triton_deploy.bench.inprocess import load_in_process, measure_ceiling, measure_latency
from triton_deploy.bench.payloads import BenchError, model_info, sample_rows


def test_onnx_model_runs_in_process(user_repository: Path) -> None:
    import onnxruntime as ort

    info = model_info(user_repository, "tiny_onnx")
    model = load_in_process(info)
    x = np.ones((3, 4), np.float32)
    expected = ort.InferenceSession(str(info.path / "1" / "model.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(model({"x": x})["y"], expected, rtol=1e-6)


def test_xgboost_model_runs_with_the_fast_predictor(user_repository: Path) -> None:
    import xgboost

    info = model_info(user_repository, "tiny_trees")
    model = load_in_process(info)
    x = np.random.default_rng(0).random((7, 5)).astype(np.float32)
    x[2, 1] = np.nan  # missing value
    booster = xgboost.Booster()
    booster.load_model(str(info.path / "1" / "xgboost.json"))
    expected = booster.inplace_predict(x, validate_features=False)
    np.testing.assert_array_equal(model({"input__0": x})["output__0"].reshape(-1), expected)


def test_ceiling_and_latency_are_measured(user_repository: Path) -> None:
    info = model_info(user_repository, "tiny_onnx")
    rows, _ = sample_rows(user_repository, info)
    model = load_in_process(info)
    assert measure_ceiling(model, rows, batch=8, seconds=0.1) > 0
    latency = measure_latency(model, rows, seconds=0.1)
    assert 0 < latency["p50"] <= latency["p99"]


def test_python_models_have_no_in_process_runner(tmp_path: Path) -> None:
    (tmp_path / "repo" / "py" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "py" / "config.pbtxt").write_text(
        'name: "py" backend: "python" max_batch_size: 4 '
        'input { name: "a" data_type: TYPE_FP32 dims: 1 } '
        'output { name: "b" data_type: TYPE_FP32 dims: 1 }'
    )
    with pytest.raises(BenchError, match="backend 'python' has no in-process runner"):
        load_in_process(model_info(tmp_path / "repo", "py"))
