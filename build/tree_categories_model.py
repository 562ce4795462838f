"""Triton Python model: a tree model's features with categories as strings in, FIL's
``input__0`` out (written by ``tdeploy build`` for ``categorical: strings``; edit the spec).

``numeric`` FP32 [n_numeric] holds the numeric features and ``categories`` BYTES
[n_categorical] the categorical ones, each in the order of ``categories.json``; a category is
replaced by its code (its position in the training categories), an unknown one by NaN, which
FIL treats as missing, as XGBoost and LightGBM do. Python 3.10 syntax; needs numpy alone.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(HERE, "categories.json")) as handle:
            table = json.load(handle)
        self.width = len(table["features"])
        categorical = sorted(table["categorical"].values(), key=lambda c: c["index"])
        self.categorical = [c["index"] for c in categorical]
        self.codes = [
            {name.encode("utf-8"): float(code) for code, name in enumerate(c["categories"])}
            for c in categorical
        ]
        self.numeric = [i for i in range(self.width) if i not in set(self.categorical)]

    def execute(self, requests):
        responses = []
        for request in requests:
            strings = pb_utils.get_input_tensor_by_name(request, "categories").as_numpy()
            rows = strings.shape[0]
            features = np.full((rows, self.width), np.nan, dtype=np.float32)
            if self.numeric:
                numeric = pb_utils.get_input_tensor_by_name(request, "numeric").as_numpy()
                features[:, self.numeric] = numeric.astype(np.float32)
            for column, (index, codes) in enumerate(zip(self.categorical, self.codes, strict=True)):
                values = [
                    v if isinstance(v, bytes) else str(v).encode("utf-8")
                    for v in strings[:, column]
                ]
                features[:, index] = [codes.get(v, np.nan) for v in values]
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("input__0", features)])
            )
        return responses
