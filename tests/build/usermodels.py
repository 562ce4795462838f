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


# -- models as people export them (issue 17) -----------------------------------------------------
def make_torch_onnx_default(folder: Path, *, hidden: int = 4096, name: str = "wide") -> UserModel:
    """A plain ``torch.onnx.export(model, (x,), path)``: torch 2.13's defaults write the weights
    to ``<name>.onnx.data`` beside the graph, a fixed batch of 2 and an output named like
    ``linear_2``. hidden=4096 makes a ~32 MB model."""
    import torch
    from torch import nn

    torch.manual_seed(17)
    model = nn.Sequential(
        nn.Linear(512, hidden), nn.ReLU(), nn.Linear(hidden, 1536), nn.ReLU(), nn.Linear(1536, 10)
    ).eval()
    path = folder / f"{name}.onnx"
    torch.onnx.export(model, (torch.randn(2, 512),), str(path))

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"output": model(torch.from_numpy(feeds["input"])).numpy()}

    x = _rng(31).standard_normal((40, 512)).astype(np.float32)
    samples = folder / f"{name}_samples.npz"
    np.savez(samples, input=x)
    entry = {"tolerance": {"atol": 1e-5, "rtol": 1e-4}}
    return UserModel(name, path, samples, {"input": x}, reference, entry)


def make_huge_external_onnx(folder: Path, *, gib: float = 2.05) -> UserModel:
    """An ONNX graph whose one initializer (a float32 table of ``gib`` GiB) lives in an external
    file: over protobuf's 2 GB, so it can only exist as graph + data. ``picked = table[index] +
    x``: each request reads a few values of it."""
    import onnx
    from onnx import TensorProto, helper

    rows = int(gib * 2**30) // 4
    data = folder / "table.bin"
    with data.open("wb") as handle:  # a sparse file: cheap to make, real to read
        handle.truncate(rows * 4)
    marks = {0: 1.5, 12345: -2.0, rows - 1: 3.25}
    with data.open("r+b") as handle:
        for index, value in marks.items():
            handle.seek(index * 4)
            handle.write(np.float32(value).tobytes())
    table = helper.make_tensor_value_info("table", TensorProto.FLOAT, [rows])
    initializer = TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[rows])
    initializer.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "table.bin"), ("offset", "0"), ("length", str(rows * 4))):
        entry = initializer.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "index"], ["values"], axis=0),
            helper.make_node("Add", ["values", "x"], ["picked"]),
        ],
        "huge",
        [
            helper.make_tensor_value_info("index", TensorProto.INT64, ["batch", 3]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
        ],
        [helper.make_tensor_value_info("picked", TensorProto.FLOAT, ["batch", 3])],
        initializer=[initializer],
    )
    del table
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "huge.onnx"
    onnx.save_model(model, str(path))
    picks = np.array(list(marks), dtype=np.int64)

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lookup = np.vectorize(lambda i: marks.get(int(i), 0.0))
        return {"picked": (lookup(feeds["index"]).astype(np.float32) + feeds["x"])}

    rng = _rng(37)
    inputs = {
        "index": rng.choice(picks, (20, 3)).astype(np.int64),
        "x": rng.standard_normal((20, 3)).astype(np.float32),
    }
    samples = folder / "huge_samples.npz"
    np.savez(samples, **inputs)
    return UserModel("huge", path, samples, inputs, reference, {"max_batch_size": 8})


def make_skl2onnx_classifier(folder: Path, *, zipmap: bool) -> UserModel:
    """skl2onnx's export as people run it: ``to_onnx(clf, X)`` (ZipMap output) or with
    ``options={'zipmap': False}`` (opset 22 with skl2onnx 1.20)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = _rng(41)
    x = rng.standard_normal((400, 5)).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])
    clf = LogisticRegression(max_iter=500).fit(x, y)
    options = None if zipmap else {"zipmap": False}
    onnx_model = to_onnx(clf, x[:2], options=options)
    name = "iris_zipmap" if zipmap else "iris_opset22"
    path = folder / f"{name}.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    samples = folder / f"{name}_samples.npz"
    probability = "output_probability" if zipmap else "probabilities"
    label = "output_label" if zipmap else "label"
    # The training code writes scikit-learn's own outputs beside the inputs: the reference.
    np.savez(
        samples,
        X=x[:100],
        **{f"expected/{probability}": clf.predict_proba(x[:100]).astype(np.float32)},
    )

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            label: clf.predict(feeds["X"]).astype(np.int64),
            probability: clf.predict_proba(feeds["X"]).astype(np.float32),
        }

    entry = {"max_batch_size": 64, "tolerance": {"atol": 1e-5, "rtol": 1e-4}}
    return UserModel(name, path, samples, {"X": x[:100]}, reference, entry)


def make_hf_pt2(folder: Path) -> UserModel:
    """A Hugging Face BERT classifier exported with torch.export: its output is a
    ``SequenceClassifierOutput`` (a registered pytree class), its inputs keyword arguments."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(43)
    config = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        max_position_embeddings=64,
    )
    model = BertForSequenceClassification(config).eval()
    ids = torch.randint(1, 120, (2, 8))
    batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=64)
    program = torch.export.export(
        model,
        (),
        {"input_ids": ids, "attention_mask": torch.ones_like(ids)},
        dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
        strict=False,
    )
    path = folder / "bert_cls.pt2"
    torch.export.save(program, str(path))
    rng = _rng(47)
    inputs = {
        "input_ids": rng.integers(1, 120, (50, 12)).astype(np.int64),
        "attention_mask": np.ones((50, 12), dtype=np.int64),
    }
    inputs["attention_mask"][::3, 9:] = 0
    samples = folder / "bert_cls_samples.npz"
    np.savez(samples, **inputs)

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = model(
                input_ids=torch.from_numpy(feeds["input_ids"]),
                attention_mask=torch.from_numpy(feeds["attention_mask"]),
            )
        return {"logits": out.logits.numpy()}

    entry = {
        "pre_import": ["transformers.modeling_outputs"],
        "max_batch_size": 32,
        "tolerance": {"atol": 1e-4, "rtol": 1e-4},
    }
    return UserModel("bert_cls", path, samples, inputs, reference, entry)


SENTENCES = [
    "the service was quick and the staff were friendly",
    "terrible delay, the parcel arrived broken",
    "an average experience, nothing special",
    "I would order again, great value for money",
    "the app crashed twice before checkout",
    "delivery on time and well packed",
    "customer support never answered my emails",
    "fine product but the manual is confusing",
]


def make_hf_folder(folder: Path, *, task: str = "text-classification") -> Path:
    """What ``model.save_pretrained(d)`` and ``tokenizer.save_pretrained(d)`` write for a tiny
    BERT (random weights from a config) and a WordPiece tokenizer trained here with the
    ``tokenizers`` library: no hub, no download."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    torch.manual_seed(53)
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece.train_from_iterator(
        SENTENCES * 20, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special)
    )
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    name = "reviews" if task == "text-classification" else "review_embedder"
    path = folder / name
    model = (
        BertForSequenceClassification(config)
        if task == "text-classification"
        else BertModel(config)
    )
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    (folder / f"{name}_samples.txt").write_text("\n".join(SENTENCES) + "\n")
    return path


def hf_reference(path: Path, task: str) -> Callable[[list[str]], dict[str, np.ndarray]]:
    """The folder run with transformers in the test process: texts in, the task's outputs."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if task == "text-classification":
        model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    else:
        model = AutoModel.from_pretrained(str(path)).eval()

    def run(texts: list[str]) -> dict[str, np.ndarray]:
        encoded = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**encoded)
        if task == "text-classification":
            logits = out.logits
            names = [model.config.id2label[i] for i in logits.argmax(1).tolist()]
            return {
                "logits": logits.numpy(),
                "probabilities": torch.softmax(logits, 1).numpy(),
                "label": np.array([[n.encode()] for n in names], dtype=object),
            }
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
        return {"embedding": pooled.numpy()}

    return run


def make_sklearn_models(folder: Path) -> dict[str, tuple[Path, Any, dict[str, Any]]]:
    """scikit-learn estimators saved as people save them: skops (and one joblib pickle).
    name -> (file, fitted estimator, spec entry extras)."""
    import joblib
    import skops.io
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = _rng(59)
    x = rng.standard_normal((500, 6)).astype(np.float32)
    three = np.digitize(x[:, 0] + x[:, 1], [-0.6, 0.6])
    binary = (x[:, 2] - x[:, 3] > 0).astype(int)
    names = np.array(["bronze", "silver", "gold"])[three]
    made: dict[str, tuple[Path, Any, dict[str, Any]]] = {}
    estimators = {
        "forest": (RandomForestClassifier(30, max_depth=6, random_state=0).fit(x, three), "fil"),
        "boosted": (
            GradientBoostingRegressor(n_estimators=40, random_state=0).fit(x, x[:, 4]),
            "fil",
        ),
        "histgb": (
            HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, binary),
            "fil",
        ),
        "scaled_logreg": (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, names),
            None,
        ),
    }
    for name, (estimator, backend) in estimators.items():
        path = folder / f"{name}.skops"
        skops.io.dump(estimator, str(path))
        extras = {"backend": backend} if backend else {}
        made[name] = (path, estimator, extras | {"max_batch_size": 64})
    pickled = folder / "legacy.joblib"
    joblib.dump(estimators["forest"][0], pickled)
    made["legacy"] = (pickled, estimators["forest"][0], {"trust_pickle": True, "backend": "fil"})
    return made


CITIES = ["lima", "oslo", "paris", "rome", "kyoto"]


def categorical_frame(rows: int, seed: int) -> Any:
    """Two numeric columns around a pandas category column, as a user's training data."""
    import pandas as pd

    rng = _rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.standard_normal(rows).astype(np.float32),
            "city": pd.Categorical(rng.choice(CITIES, rows), categories=CITIES),
            "age": rng.uniform(18, 80, rows).astype(np.float32),
        }
    )


def make_categorical_trees(folder: Path) -> dict[str, tuple[Path, Any]]:
    """XGBoost (enable_categorical, a pandas category column; XGBoost >= 3.1 stores the names
    as `cats`) and LightGBM (pandas_categorical) classifiers. name -> (file, sklearn-API model)."""
    import lightgbm
    import xgboost

    frame = categorical_frame(600, 61)
    y = (frame.amount + (frame.city == "rome") * 1.2 - (frame.city == "oslo") * 0.8) > 0.3
    made: dict[str, tuple[Path, Any]] = {}
    xgb = xgboost.XGBClassifier(
        n_estimators=20, max_depth=4, enable_categorical=True, tree_method="hist", random_state=0
    ).fit(frame, y.astype(int))
    path = folder / "shops_xgb.json"
    xgb.get_booster().save_model(str(path))
    made["shops_xgb"] = (path, xgb)
    lgb = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1, random_state=0)
    lgb.fit(frame, y.astype(int))
    path = folder / "shops_lgb.txt"
    lgb.booster_.save_model(str(path))
    made["shops_lgb"] = (path, lgb)
    return made
