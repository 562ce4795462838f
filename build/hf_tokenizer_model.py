"""Triton Python model: strings in, token ids out (written by ``tdeploy build`` for a Hugging
Face model folder; edit the spec, not this file).

Runs the folder's own fast tokenizer (``tokenizer.json``) with the ``tokenizers`` library that
the build vendored into ``vendor/`` beside this file: an abi3 wheel's files, which import on
Python 3.10 (Triton 24.10's Python backend) as on 3.11, so the NGC container needs nothing
installed. Each request's texts are padded to the longest of that request and truncated to the
model's maximum length, as ``tokenizer(texts, padding=True, truncation=True)`` does.
Python 3.10 syntax only.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "vendor"))

import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


def _log(message):
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        logger.log_info(message)
    else:
        print(message, flush=True)


class TritonPythonModel:
    def initialize(self, args):
        with open(os.path.join(HERE, "tokenizer_settings.json")) as handle:
            settings = json.load(handle)
        tokenizer = tokenizers.Tokenizer.from_file(os.path.join(HERE, "tokenizer.json"))
        tokenizer.enable_truncation(
            settings["max_length"], direction=settings.get("truncation_side", "right")
        )
        tokenizer.enable_padding(
            direction=settings.get("padding_side", "right"),
            pad_id=settings["pad_id"],
            pad_type_id=settings.get("pad_type_id", 0),
            pad_token=settings["pad_token"],
        )
        self.tokenizer = tokenizer
        self.text = settings["text_input"]
        self.outputs = settings["outputs"]
        _log(
            f"{args.get('model_name', 'tokenizer')}: tokenizers {tokenizers.__version__} "
            f"from {os.path.dirname(os.path.abspath(tokenizers.__file__))}"
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, self.text)
            texts = [
                value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                for value in tensor.as_numpy().reshape(-1)
            ]
            encodings = self.tokenizer.encode_batch(texts)
            arrays = {
                "input_ids": [e.ids for e in encodings],
                "attention_mask": [e.attention_mask for e in encodings],
                "token_type_ids": [e.type_ids for e in encodings],
            }
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(name, np.array(arrays[name], dtype=np.int64))
                        for name in self.outputs
                    ]
                )
            )
        return responses
