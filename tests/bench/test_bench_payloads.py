"""Payloads for any model: golden cases when the build kept them, else synthesised from the config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from triton_deploy.bench.payloads import (
    BenchError,
    grpc_requests,
    json_bodies,
    model_info,
    sample_rows,
)
from triton_deploy.build.golden import GoldenCase, golden_case_path


def test_synthetic_rows_follow_the_config(user_repository: Path) -> None:
    info = model_info(user_repository, "tiny_onnx")
    rows, source = sample_rows(user_repository, info, rows=10)
    assert source.startswith("synthetic")
    assert rows["x"].shape == (10, 4) and rows["x"].dtype == np.float32


def test_golden_cases_are_preferred(user_repository: Path, tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(user_repository, repository)
    path = golden_case_path(repository, "tiny_onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    real = np.arange(12, dtype=np.float32).reshape(3, 4)
    GoldenCase({"x": real}, {"y": np.zeros((3, 2), np.float32)}).save(path)
    rows, source = sample_rows(repository, model_info(repository, "tiny_onnx"))
    assert source == "golden cases"
    np.testing.assert_array_equal(rows["x"], real)


def test_grpc_requests_are_valid_infer_requests(user_repository: Path) -> None:
    info = model_info(user_repository, "tiny_onnx")
    rows, _ = sample_rows(user_repository, info, rows=8)
    payloads = grpc_requests(info, rows, batch=3, count=4)
    assert len(payloads) == 4
    message = service_pb2.ModelInferRequest.FromString(payloads[1])
    assert message.model_name == "tiny_onnx"
    assert [t.name for t in message.inputs] == ["x"]
    assert list(message.inputs[0].shape) == [3, 4]
    values = np.frombuffer(message.raw_input_contents[0], dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(values, rows["x"][[3, 4, 5]])


def test_bytes_inputs_are_serialised_the_triton_way(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "words"
    (folder / "1").mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        'name: "words" backend: "python" max_batch_size: 8 '
        'input { name: "w" data_type: TYPE_STRING dims: 1 } '
        'output { name: "n" data_type: TYPE_INT64 dims: 1 }'
    )
    info = model_info(tmp_path / "repo", "words")
    rows, _ = sample_rows(tmp_path / "repo", info, rows=4)
    message = service_pb2.ModelInferRequest.FromString(grpc_requests(info, rows, batch=2)[0])
    assert message.inputs[0].datatype == "BYTES"
    raw = message.raw_input_contents[0]
    length = int.from_bytes(raw[:4], "little")  # Triton's BYTES: 4-byte length, then the bytes
    assert raw[4 : 4 + length] == rows["w"][0, 0]
    body = json.loads(json_bodies(info, rows, batch=2)[0])
    assert body["inputs"]["w"][0][0] == rows["w"][0, 0].decode()


def test_unknown_model_names_the_repository_contents(user_repository: Path) -> None:
    with pytest.raises(BenchError, match=r"'nope' is not in .*tiny_onnx, tiny_trees"):
        model_info(user_repository, "nope")
