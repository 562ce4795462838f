"""Python-based Triton backend named ``onnxruntime``: the native backend's contract, on CPU.

Installed by ``tdeploy serve`` as ``<backend-dir>/onnxruntime/model.py``; Triton uses it for
every model whose config says ``platform: "onnxruntime_onnx"`` or ``backend: "onnxruntime"``
when no ``libtriton_onnxruntime.so`` is there. On the NGC container the native backend serves
the very same config and file. Honoured from the native contract: ``default_model_filename``
(default ``model.onnx``, a ``model.onnx/`` folder accepted), the string parameters
``intra_op_thread_count``, ``inter_op_thread_count``, ``execution_mode``,
``enable_mem_arena``, ``enable_mem_pattern``, and ``optimization { graph { level } }``.
All requests of one ``execute()`` call run as one ``InferenceSession.run``.
"""

import json
import os
import sys

import onnxruntime as ort
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tdeploy_batching import execute_batched, input_shapes, string_parameters


def _flag(parameters, key, default):
    value = parameters.get(key)
    if value is None or value == "":
        return default
    if value not in ("true", "false", "0", "1"):
        raise pb_utils.TritonModelException(
            f"parameter {key}={value!r}: expected 'true' or 'false'"
        )
    return value in ("true", "1")


def session_options(config):
    parameters = string_parameters(config)
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(parameters.get("intra_op_thread_count", "0") or 0)
    options.inter_op_num_threads = int(parameters.get("inter_op_thread_count", "0") or 0)
    mode = parameters.get("execution_mode", "0") or "0"
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if mode == "1" else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    options.enable_cpu_mem_arena = _flag(parameters, "enable_mem_arena", True)
    options.enable_mem_pattern = _flag(parameters, "enable_mem_pattern", True)
    level = int(config.get("optimization", {}).get("graph", {}).get("level", 0))
    options.graph_optimization_level = {
        -1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        1: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }.get(level, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    return options


def model_path(config, model_directory, version):
    filename = config.get("default_model_filename") or "model.onnx"
    path = os.path.join(model_directory, version, filename)
    if os.path.isdir(path):
        path = os.path.join(path, "model.onnx")
    if not os.path.isfile(path):
        raise pb_utils.TritonModelException(f"unable to find ONNX model file '{path}'")
    return path


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = model_path(config, args["model_repository"], args["model_version"])
        self.session = ort.InferenceSession(
            path, session_options(config), providers=["CPUExecutionProvider"]
        )
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.expected = input_shapes(config)
        self.outputs = {
            tensor["name"]: pb_utils.triton_string_to_numpy(tensor["data_type"])
            for tensor in config["output"]
        }
        self.output_names = list(self.outputs)
        session_inputs = {i.name for i in self.session.get_inputs()}
        session_outputs = {o.name for o in self.session.get_outputs()}
        for name in self.input_names:
            if name not in session_inputs:
                raise pb_utils.TritonModelException(
                    f"model '{args['model_name']}': config input '{name}' is not an input of {path} "
                    f"(the model has {sorted(session_inputs)})"
                )
        for name in self.outputs:
            if name not in session_outputs:
                raise pb_utils.TritonModelException(
                    f"model '{args['model_name']}': config output '{name}' is not an output of {path} "
                    f"(the model has {sorted(session_outputs)})"
                )

    def _run(self, batch):
        values = self.session.run(self.output_names, batch)
        return dict(zip(self.output_names, values, strict=True))

    def execute(self, requests):
        return execute_batched(
            pb_utils, requests, self.input_names, self.outputs, self._run, self.expected
        )
