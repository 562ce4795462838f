"""digits_postprocess: logits [N, 10] -> top-k LABELS (INT64) and PROBS (FP32), best first.

``top_k`` comes from the config's parameters; the code is the trainer's
``digits_features.postprocess`` (copied beside this file by the build).
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_features import postprocess
from tdeploy_batching import RequestError, execute_batched, input_shapes, string_parameters


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.expected = input_shapes(config)  # requests are checked against the config
        self.top_k = int(string_parameters(config).get("top_k", "3"))
        widths = {o["name"]: int(o["dims"][0]) for o in config["output"]}
        if widths != {"LABELS": self.top_k, "PROBS": self.top_k}:
            raise pb_utils.TritonModelException(
                f"outputs LABELS and PROBS must have dims [{self.top_k}] (top_k), got {widths}"
            )

    def _run(self, batch):
        logits = batch["logits"]
        if not np.isfinite(logits).all():
            raise RequestError("input tensor 'logits' holds NaN or infinite values")
        labels, probs = postprocess(logits, self.top_k)
        return {"LABELS": labels, "PROBS": probs}

    def execute(self, requests):
        outputs = {"LABELS": np.int64, "PROBS": np.float32}
        return execute_batched(pb_utils, requests, ["logits"], outputs, self._run, self.expected)
