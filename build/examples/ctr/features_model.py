"""ctr_features: raw impression fields -> the dense FP32 feature vector the XGBoost model expects.

Runs the trainer's own ``ctr_features.FeatureEncoder`` (copied beside this file by the build)
with the vocabulary fitted in training (``vocabulary.json`` beside it). Bad values (NaN, empty
or non-UTF-8 strings) fail that request alone with INVALID_ARGUMENT naming the tensor and row.
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ctr_features import CATEGORICAL, NUMERIC, FeatureEncoder, FeatureError  # noqa: E402
from tdeploy_batching import RequestError, execute_batched, input_shapes  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.expected = input_shapes(config)  # requests are checked against the config
        with open(os.path.join(HERE, "vocabulary.json")) as handle:
            self.encoder = FeatureEncoder.from_json(handle.read())
        width = int(config["output"][0]["dims"][0])
        if width != self.encoder.n_features:
            raise pb_utils.TritonModelException(
                f"output FEATURES has dims [{width}] but the vocabulary makes {self.encoder.n_features} features"
            )
        self.inputs = [*NUMERIC, *CATEGORICAL]

    def _run(self, batch):
        try:
            return {"FEATURES": self.encoder.encode(batch)}
        except FeatureError as exc:
            raise RequestError(str(exc)) from None

    def execute(self, requests):
        return execute_batched(
            pb_utils, requests, self.inputs, {"FEATURES": np.float32}, self._run, self.expected
        )
