"""Triton Python model: logits in, probabilities and label names out (written by ``tdeploy
build`` for a Hugging Face text classifier; the names are the folder's ``id2label``).
Python 3.10 syntax only; needs numpy alone.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

HERE = os.path.dirname(os.path.abspath(__file__))


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(HERE, "labels.json")) as handle:
            self.labels = [label.encode("utf-8") for label in json.load(handle)]

    def execute(self, requests):
        responses = []
        for request in requests:
            logits = pb_utils.get_input_tensor_by_name(request, "logits").as_numpy()
            logits = logits.astype(np.float32)
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
            index = logits.argmax(axis=1)
            labels = np.array([[self.labels[i]] for i in index], dtype=object)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("probabilities", probabilities),
                        pb_utils.Tensor("label", labels),
                    ]
                )
            )
        return responses
