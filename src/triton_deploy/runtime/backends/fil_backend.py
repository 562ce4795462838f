"""Python-based Triton backend named ``fil``: the FIL backend's contract for tree models, on CPU.

Installed by ``tdeploy serve`` as ``<backend-dir>/fil/model.py``. On the NGC container the
native FIL backend serves the very same config and model file. Honoured from the native
contract (fil_backend docs): tensors ``input__0`` FP32 [n_features] -> ``output__0`` FP32;
``model_type`` and its default file name; ``output_class`` (or ``is_classifier`` from 25.09),
``predict_proba``, ``threshold``, ``cpu_nthread``; NaN means a missing value. Computation in
FP32 input; all requests of one ``execute()`` call run as one prediction.
"""

import importlib
import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tdeploy_batching import execute_batched, input_shapes, string_parameters
from tdeploy_xgboost import fast_predictor

DEFAULT_FILENAMES = {
    "xgboost": "xgboost.model",
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
BOOLEAN = ("true", "false")
#: What xgboost and lightgbm import when they find it installed, for their scikit-learn
#: estimators and DataFrame inputs; a Booster reading NumPy arrays needs none of it. Hidden
#: while the library loads, an xgboost model instance's stub starts in 0.74 CPU seconds instead
#: of 2.99 and holds 66 MiB instead of 199 (scikit-learn loads scipy.stats and pandas).
UNNEEDED_BY_BOOSTERS = ("sklearn", "pandas")


def _import_tree_library(name):
    """``importlib.import_module(name)`` with ``UNNEEDED_BY_BOOSTERS`` hidden, unless this
    process imported them already; hidden modules are importable again afterwards."""
    hidden = [module for module in UNNEEDED_BY_BOOSTERS if module not in sys.modules]
    for module in hidden:
        sys.modules[module] = None  # "import sklearn" raises ImportError: treated as absent
    try:
        return importlib.import_module(name)
    finally:
        for module in hidden:
            if sys.modules.get(module, 0) is None:
                del sys.modules[module]


def _boolean(parameters, key):
    value = parameters.get(key)
    if value is None:
        return None
    if value not in BOOLEAN:
        raise pb_utils.TritonModelException(
            f"fil parameter {key}={value!r}: must be exactly 'true' or 'false'"
        )
    return value == "true"


def load_booster(model_type, path, nthread):
    if model_type.startswith("xgboost"):
        xgboost = _import_tree_library("xgboost")
        booster = xgboost.Booster()
        booster.load_model(path)
        booster.set_param({"nthread": nthread})
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        if objective == "multi:softmax":
            # FIL reads a softmax model's class scores; XGBoost would give class indices.
            booster.set_param({"objective": "multi:softprob"})
        return fast_predictor(booster)
    if model_type == "lightgbm":
        lightgbm = _import_tree_library("lightgbm")
        booster = lightgbm.Booster(model_file=path)
        return lambda x: booster.predict(x, num_threads=max(nthread, 0))
    if model_type == "treelite_checkpoint":
        treelite = _import_tree_library("treelite")
        model = treelite.Model.deserialize(path)

        def predict(x):
            values = np.asarray(
                treelite.gtil.predict(model, x, nthread=nthread if nthread > 0 else -1)
            )
            values = values.reshape(values.shape[0], -1)
            return values[:, 0] if values.shape[1] == 1 else values

        return predict
    raise pb_utils.TritonModelException(
        f"fil model_type '{model_type}' is not supported by the local CPU backend "
        "(supported: xgboost, xgboost_json, xgboost_ubj, lightgbm, treelite_checkpoint)"
    )


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = string_parameters(config)
        model_type = parameters.get("model_type", "xgboost")
        if model_type not in DEFAULT_FILENAMES:
            raise pb_utils.TritonModelException(
                f"fil parameter model_type={model_type!r}: expected one of {sorted(DEFAULT_FILENAMES)}"
            )
        filename = config.get("default_model_filename") or DEFAULT_FILENAMES[model_type]
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(
                f"fil: model file '{path}' not found (model_type {model_type})"
            )
        is_classifier = _boolean(parameters, "is_classifier")
        output_class = _boolean(parameters, "output_class")
        self.classifier = bool(is_classifier if is_classifier is not None else output_class)
        self.predict_proba = bool(_boolean(parameters, "predict_proba"))
        self.threshold = float(parameters.get("threshold", "0.5") or 0.5)
        nthread = int(parameters.get("cpu_nthread", "-1") or -1)
        self.predict = load_booster(model_type, path, nthread)
        inputs = {tensor["name"]: tensor for tensor in config["input"]}
        outputs = {tensor["name"]: tensor for tensor in config["output"]}
        if "input__0" not in inputs or inputs["input__0"]["data_type"] != "TYPE_FP32":
            raise pb_utils.TritonModelException(
                "fil: the model needs one input 'input__0' of TYPE_FP32"
            )
        if "output__0" not in outputs or outputs["output__0"]["data_type"] != "TYPE_FP32":
            raise pb_utils.TritonModelException(
                "fil: the model needs an output 'output__0' of TYPE_FP32"
            )
        self.output_width = int(np.prod([int(d) for d in outputs["output__0"]["dims"]]))
        self.n_features = int(inputs["input__0"]["dims"][-1])
        self.expected = input_shapes(config)

    def _run(self, batch):
        features = np.ascontiguousarray(batch["input__0"], dtype=np.float32).reshape(
            -1, self.n_features
        )
        values = np.asarray(self.predict(features), dtype=np.float32)
        rows = features.shape[0]
        if values.ndim == 1:  # binary classifier probability, or regression value
            if not self.classifier:
                out = values.reshape(rows, 1)
            elif self.predict_proba:
                out = (
                    values.reshape(rows, 1)
                    if self.output_width == 1
                    else np.stack([1 - values, values], axis=1)
                )
            else:
                out = (values > self.threshold).astype(np.float32).reshape(rows, 1)
        else:  # multiclass probabilities
            out = (
                values
                if self.predict_proba
                else np.argmax(values, axis=1).astype(np.float32).reshape(rows, 1)
            )
        return {"output__0": out.reshape(rows, self.output_width)}

    def execute(self, requests):
        return execute_batched(
            pb_utils, requests, ["input__0"], {"output__0": np.float32}, self._run, self.expected
        )
