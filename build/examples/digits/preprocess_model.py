"""digits_preprocess: uint8 images [N, 8, 8] -> normalised float32 [N, 1, 8, 8].

Runs the trainer's own ``digits_features.preprocess`` (copied beside this file by the build).
"""

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from digits_features import preprocess
from tdeploy_batching import execute_batched, input_shapes


class TritonPythonModel:
    def initialize(self, args):
        self.config = json.loads(args["model_config"])
        self.expected = input_shapes(self.config)  # requests are checked against the config

    def _run(self, batch):
        return {"images": preprocess(batch["IMAGES"])}

    def execute(self, requests):
        return execute_batched(
            pb_utils, requests, ["IMAGES"], {"images": np.float32}, self._run, self.expected
        )
