"""Model files made in the tests, by the frameworks themselves, as a user's training pipeline would.

None of them comes from the package's recipes: they exercise the path a user's own files take.
Each maker returns the file and a ``reference`` that runs it with its own framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Reference = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class UserModel:
    name: str
    path: Path
    samples: Path
    inputs: dict[str, np.ndarray]  # the samples
    reference: Reference  # the source framework, in the test process
    entry: dict[str, Any]  # its spec entry (without name/source/samples)


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def make_pt2_mlp(folder: Path) -> UserModel:
    """torch.export archive of an MLP with a dynamic batch axis, plus real samples."""
    import torch
    from torch import nn

    torch.manual_seed(3)

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.net(features), dim=1)

    model = MLP().eval()
    x = _rng().standard_normal((300, 16)).astype(np.float32)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.from_numpy(x[:2]),), dynamic_shapes=({0: batch},))
    path = folder / "mlp.pt2"
    torch.export.save(program, str(path))
    samples = folder / "mlp_samples.npz"
    np.savez(samples, features=x)

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"probabilities": model(torch.from_numpy(feeds["features"])).numpy()}

    entry = {
        "outputs": [{"name": "probabilities", "dtype": "FP32", "dims": [4]}],
        "max_batch_size": 32,
        "tolerance": {"atol": 1e-5, "rtol": 1e-4},
    }
    return UserModel("mlp", path, samples, {"features": x}, reference, entry)


def make_two_input_onnx(folder: Path, *, opset: int = 17, fixed_batch: bool = False) -> UserModel:
    """ONNX with inputs 'left' (FP32) and 'right' (INT64), outputs 'total' and 'count' ([N])."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    batch: Any = 2 if fixed_batch else "batch"
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["right"], ["right_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["left", "right_f"], ["product"]),
            helper.make_node("Add", ["product", "bias"], ["total"]),
            helper.make_node("ReduceSum", ["right", "axes"], ["count"], keepdims=0),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("left", TensorProto.FLOAT, [batch, 4]),
            helper.make_tensor_value_info("right", TensorProto.INT64, [batch, 4]),
        ],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, [batch, 4]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [batch]),
        ],
        initializer=[
            helper.make_tensor("bias", TensorProto.FLOAT, [4], [0.5, -1.0, 2.0, 0.0]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = folder / ("fixed.onnx" if fixed_batch else "pair.onnx")
    onnx.save(model, str(path))
    rng = _rng(11)
    inputs = {
        "left": rng.standard_normal((200, 4)).astype(np.float32),
        "right": rng.integers(-5, 6, (200, 4)).astype(np.int64),
    }
    samples = folder / f"{path.stem}_samples.npz"
    np.savez(samples, **inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        total, count = session.run(["total", "count"], feeds)
        return {"total": total, "count": count}

    return UserModel(path.stem, path, samples, inputs, reference, {"max_batch_size": 64})


def make_rank1_onnx(folder: Path) -> UserModel:
    """ONNX whose input and output are only the batch axis: x [N] -> doubled [N]."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["doubled"])],
        "rank1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["batch"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "vector.onnx"
    onnx.save(model, str(path))
    x = _rng(29).standard_normal(100).astype(np.float32)
    samples = folder / "vector_samples.npy"
    np.save(samples, x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"doubled": session.run(["doubled"], {"x": feeds["x"].reshape(-1)})[0]}

    return UserModel("vector", path, samples, {"x": x}, reference, {"max_batch_size": 16})


def make_torchscript(folder: Path) -> UserModel:
    import torch
    from torch import nn

    torch.manual_seed(5)
    module = nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2)).eval()
    traced = torch.jit.trace(module, torch.zeros(2, 8))
    path = folder / "scorer.pt"
    torch.jit.save(traced, str(path))
    x = _rng(13).standard_normal((120, 8)).astype(np.float32)
    samples = folder / "scorer_samples.npy"
    np.save(samples, x)

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"score": module(torch.from_numpy(feeds["x"])).numpy()}

    entry = {
        "inputs": [{"name": "x", "dtype": "FP32", "dims": [8]}],
        "outputs": [{"name": "score", "dtype": "FP32", "dims": [2]}],
        "max_batch_size": 16,
        "tolerance": {"atol": 1e-5, "rtol": 1e-4},
    }
    return UserModel("scorer", path, samples, {"x": x}, reference, entry)


def _features(rows: int, seed: int) -> np.ndarray:
    x = _rng(seed).standard_normal((rows, 6)).astype(np.float32)
    x[::9, 2] = np.nan  # missing values: FIL and the frameworks treat NaN as missing
    return x


def make_xgboost_multiclass_ubj(folder: Path) -> UserModel:
    import xgboost

    x = _features(600, 17)
    y = (np.nan_to_num(x[:, 0]) > 0).astype(int) + (np.nan_to_num(x[:, 1]) > 0.5).astype(int)
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 4, "seed": 1},
        xgboost.DMatrix(x, label=y),
        30,
    )
    path = folder / "species.ubj"
    booster.save_model(str(path))
    samples = folder / "species_samples.npz"
    np.savez(samples, input__0=x[:250])

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output__0": booster.inplace_predict(feeds["input__0"]).astype(np.float32)}

    return UserModel(
        "species", path, samples, {"input__0": x[:250]}, reference, {"max_batch_size": 128}
    )


def make_xgboost_regression_json(folder: Path) -> UserModel:
    import xgboost

    x = _features(600, 19)
    y = 3 * np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) ** 2
    booster = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 5, "seed": 1},
        xgboost.DMatrix(x, label=y),
        40,
    )
    path = folder / "price.json"
    booster.save_model(str(path))
    samples = folder / "price_samples.npz"
    np.savez(samples, input__0=x[:250])

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = booster.inplace_predict(feeds["input__0"]).astype(np.float32)
        return {"output__0": values.reshape(-1, 1)}

    entry = {"max_batch_size": 128, "tolerance": {"atol": 1e-4, "rtol": 1e-5}}
    return UserModel("price", path, samples, {"input__0": x[:250]}, reference, entry)


def make_lightgbm(folder: Path, *, classes: int) -> UserModel:
    import lightgbm

    x = _features(800, 23 + classes)
    if classes == 2:
        y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 4]) > 0).astype(int)
        params = {"objective": "binary"}
    else:
        y = np.digitize(np.nan_to_num(x[:, 0]), [-0.5, 0.5])
        params = {"objective": "multiclass", "num_class": classes}
    booster = lightgbm.train(
        {**params, "verbose": -1, "num_leaves": 15, "seed": 1}, lightgbm.Dataset(x, label=y), 25
    )
    name = "churn" if classes == 2 else "tier"
    path = folder / f"{name}.txt"
    booster.save_model(str(path))
    samples = folder / f"{name}_samples.npz"
    np.savez(samples, input__0=x[:250])

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = booster.predict(feeds["input__0"]).astype(np.float32)
        return {"output__0": values.reshape(len(values), -1)}

    entry = {"max_batch_size": 128, "tolerance": {"atol": 1e-5, "rtol": 1e-4}}
    return UserModel(name, path, samples, {"input__0": x[:250]}, reference, entry)


def spec_entry(model: UserModel, base: Path) -> dict[str, Any]:
    import os

    return {
        "name": model.name,
        "source": os.path.relpath(model.path, base),
        "samples": os.path.relpath(model.samples, base),
        **model.entry,
    }
