"""A small repository of "user" models (not the examples): the bench must take any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc


def _config(text: str) -> str:
    config = mc.ModelConfig()
    text_format.Parse(text, config)  # the test's configs are valid Triton configs
    return text_format.MessageToString(config)


def write_onnx_model(folder: Path, name: str = "tiny_onnx") -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.random((4, 2)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.random(2).astype(np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    (folder / name / "1").mkdir(parents=True)
    onnx.save(model, folder / name / "1" / "model.onnx")
    (folder / name / "config.pbtxt").write_text(
        _config(
            f"""
            name: "{name}"
            platform: "onnxruntime_onnx"
            max_batch_size: 32
            input {{ name: "x" data_type: TYPE_FP32 dims: 4 }}
            output {{ name: "y" data_type: TYPE_FP32 dims: 2 }}
            instance_group {{ count: 1 kind: KIND_CPU }}
            dynamic_batching {{ preferred_batch_size: 16 max_queue_delay_microseconds: 200 }}
            parameters {{ key: "intra_op_thread_count" value {{ string_value: "1" }} }}
            """
        )
    )


def write_tree_model(folder: Path, name: str = "tiny_trees") -> None:
    import xgboost

    rng = np.random.default_rng(1)
    x = rng.random((200, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(x, label=y),
        num_boost_round=5,
    )
    (folder / name / "1").mkdir(parents=True)
    booster.save_model(str(folder / name / "1" / "xgboost.json"))
    (folder / name / "config.pbtxt").write_text(
        _config(
            f"""
            name: "{name}"
            backend: "fil"
            max_batch_size: 64
            input {{ name: "input__0" data_type: TYPE_FP32 dims: 5 }}
            output {{ name: "output__0" data_type: TYPE_FP32 dims: 1 }}
            instance_group {{ count: 1 kind: KIND_CPU }}
            dynamic_batching {{ max_queue_delay_microseconds: 300 }}
            parameters {{ key: "model_type" value {{ string_value: "xgboost_json" }} }}
            parameters {{ key: "output_class" value {{ string_value: "true" }} }}
            parameters {{ key: "predict_proba" value {{ string_value: "true" }} }}
            parameters {{ key: "cpu_nthread" value {{ string_value: "1" }} }}
            """
        )
    )


@pytest.fixture(scope="session")
def user_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two models a user might bring: an ONNX regressor and an XGBoost classifier (fil)."""
    repository = tmp_path_factory.mktemp("user") / "repository"
    repository.mkdir()
    write_onnx_model(repository)
    write_tree_model(repository)
    return repository
