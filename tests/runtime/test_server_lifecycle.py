"""Start-up failures, graceful shutdown, and the Python-based backends' native contracts."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import xgboost
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.errors import ServerStartError
from triton_deploy.runtime.repository import read_config
from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server

SLOW_MODEL = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        time.sleep(1.5)
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            out.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("Y", x)]))
        return out
"""


def _write(config: mc.ModelConfig, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.pbtxt").write_text(text_format.MessageToString(config))


def _slow_repository(root: Path) -> Path:
    tensor = {"name": "X", "data_type": mc.TYPE_FP32, "dims": [1]}
    _write(
        mc.ModelConfig(
            name="slow",
            backend="python",
            max_batch_size=8,
            input=[mc.ModelInput(**tensor)],
            output=[mc.ModelOutput(**(tensor | {"name": "Y"}))],
        ),
        root / "slow",
    )
    (root / "slow" / "1").mkdir()
    (root / "slow" / "1" / "model.py").write_text(SLOW_MODEL)
    return root


def test_a_model_that_fails_to_load_stops_start_up_with_the_servers_own_error(
    model_repository: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repository / "ctr_xgb", repo / "ctr_xgb")
    (repo / "ctr_xgb" / "1" / "xgboost.json").unlink()
    with pytest.raises(ServerStartError) as err:
        TritonServer(repo, startup_timeout_s=60).start()
    message = str(err.value)
    assert "ctr_xgb" in message and "xgboost.json" in message and "not found" in message


ABORTING_MODEL = """
import os
import signal

class TritonPythonModel:
    def initialize(self, args):
        # what the C++ runtime prints before it aborts: no log prefix, so no error line
        print("terminate called after throwing an instance of 'std::system_error'", flush=True)
        os.kill(os.getppid(), signal.SIGABRT)  # the stub's parent: tritonserver

    def execute(self, requests):
        return []
"""


def test_a_server_killed_by_a_signal_while_starting_shows_its_last_lines(tmp_path: Path) -> None:
    # A signal gives no error line to show (a Triton 2.51 start was once aborted under load
    # with only a harmless CUDA error line to show for it): the last lines say what happened.
    repo = _slow_repository(tmp_path / "repo")
    (repo / "slow" / "1" / "model.py").write_text(ABORTING_MODEL)
    with pytest.raises(ServerStartError) as err:
        TritonServer(repo, startup_timeout_s=60).start()
    message = str(err.value)
    assert "killed by SIGABRT (signal 6) while starting" in message, message
    assert "terminate called after throwing" in message, message


def test_serve_cli_exits_non_zero_with_the_error_lines(
    model_repository: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(model_repository / "digits_cnn", repo / "digits_cnn")
    (repo / "digits_cnn" / "1" / "model.onnx").unlink()
    result = CliRunner().invoke(
        app,
        [
            "serve",
            "--repository",
            str(repo),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            "--no-log-server",
        ],
    )
    assert result.exit_code == 1
    assert "unable to find ONNX model file" in result.output


def test_build_cli_rejects_unknown_models() -> None:
    result = CliRunner().invoke(app, ["build", "--only", "nope"])
    assert result.exit_code == 1
    assert "--only names unknown model(s) ['nope']" in result.output


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    server = TritonServer(_slow_repository(tmp_path / "repo"), exit_timeout_s=10).start()
    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = grpcclient.InferInput("X", [1, 1], "FP32")
    x.set_data_from_numpy(np.array([[42.0]], np.float32))
    results: list[object] = []
    thread = threading.Thread(
        target=lambda: results.append(client.infer("slow", [x]).as_numpy("Y"))
    )
    thread.start()
    time.sleep(0.5)  # the request is now executing
    started = time.monotonic()
    code = server.stop()
    thread.join(timeout=15)
    assert code == 0
    assert len(results) == 1 and float(results[0][0, 0]) == 42.0  # type: ignore[index]
    assert time.monotonic() - started >= 0.5  # the server waited for it
    with pytest.raises(InferenceServerException):
        client.infer("slow", [x], client_timeout=3)


def _fil_variant(source: Path, root: Path, name: str, **parameters: str) -> None:
    config = read_config(source / "config.pbtxt")
    config.name = name
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    if parameters.get("predict_proba") == "true" and parameters.get("width") == "2":
        del config.parameters["width"]
        config.output[0].dims[:] = [2]
    _write(config, root / name)
    shutil.copytree(source / "1", root / name / "1")


def test_python_based_backends_honour_the_native_contracts(
    model_repository: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    source = model_repository / "ctr_xgb"
    _fil_variant(source, repo, "fil_proba", predict_proba="true")
    _fil_variant(source, repo, "fil_proba2", predict_proba="true", width="2")
    _fil_variant(source, repo, "fil_class", predict_proba="false", threshold="0.02")
    _fil_variant(
        source,
        repo,
        "fil_is_classifier",
        predict_proba="false",
        output_class="false",
        is_classifier="true",
        threshold="0.02",
    )
    # onnxruntime: default_model_filename and the model.onnx/ folder form.
    onnx_config = read_config(model_repository / "digits_cnn" / "config.pbtxt")
    onnx_config.name = "onnx_named"
    onnx_config.default_model_filename = "digits.onnx"
    _write(onnx_config, repo / "onnx_named")
    (repo / "onnx_named" / "1").mkdir()
    shutil.copy(model_repository / "digits_cnn/1/model.onnx", repo / "onnx_named/1/digits.onnx")
    onnx_config.name = "onnx_folder"
    onnx_config.ClearField("default_model_filename")
    _write(onnx_config, repo / "onnx_folder")
    (repo / "onnx_folder" / "1" / "model.onnx").mkdir(parents=True)
    shutil.copy(
        model_repository / "digits_cnn/1/model.onnx", repo / "onnx_folder/1/model.onnx/model.onnx"
    )

    rng = np.random.default_rng(0)
    features = (rng.random((32, 46)) < 0.2).astype(np.float32)
    features[:, :4] = rng.random((32, 4)) * 20
    booster = xgboost.Booster()
    booster.load_model(str(source / "1" / "xgboost.json"))
    p = booster.inplace_predict(features, validate_features=False).astype(np.float32)
    images = rng.normal(size=(5, 1, 8, 8)).astype(np.float32)
    with TritonServer(repo) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)

        def fil(model: str) -> np.ndarray:
            x = grpcclient.InferInput("input__0", list(features.shape), "FP32")
            x.set_data_from_numpy(features)
            return client.infer(model, [x]).as_numpy("output__0")

        np.testing.assert_allclose(fil("fil_proba")[:, 0], p, rtol=1e-6)
        np.testing.assert_allclose(fil("fil_proba2"), np.stack([1 - p, p], axis=1), rtol=1e-6)
        np.testing.assert_array_equal(fil("fil_class")[:, 0], (p > 0.02).astype(np.float32))
        np.testing.assert_array_equal(fil("fil_is_classifier")[:, 0], (p > 0.02).astype(np.float32))
        assert 0 < (p > 0.02).mean() < 1  # the threshold really splits the rows
        # a tree model's stub loads xgboost, not scikit-learn and pandas (3 s and ~100 MB more)
        assert server.pid is not None
        stubs = {
            stub.pid: stub.cmdline()
            for stub in psutil.Process(server.pid).children()
            if any("/fil_" in part for part in stub.cmdline())
        }
        assert len(stubs) == 4, stubs
        for pid in stubs:
            libraries = Path(f"/proc/{pid}/maps").read_text()
            assert "/xgboost/" in libraries and "/sklearn/" not in libraries, stubs[pid]
            assert "/pandas/" not in libraries, stubs[pid]

        outputs = []
        for model in ("onnx_named", "onnx_folder"):
            x = grpcclient.InferInput("images", list(images.shape), "FP32")
            x.set_data_from_numpy(images)
            outputs.append(client.infer(model, [x]).as_numpy("logits"))
        np.testing.assert_array_equal(outputs[0], outputs[1])


def test_bad_fil_parameter_fails_the_load_with_a_clear_message(
    model_repository: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    _fil_variant(model_repository / "ctr_xgb", repo, "fil_bad", predict_proba="True")
    with pytest.raises(
        ServerStartError, match=r"predict_proba='True': must be exactly 'true' or 'false'"
    ):
        TritonServer(repo, startup_timeout_s=60).start()


def test_serve_command_stops_cleanly_on_sigterm(model_repository: Path) -> None:
    """`tdeploy serve` in a real process: ready banner, then SIGTERM -> graceful exit 0."""
    import os
    import signal
    import subprocess
    import sys

    from triton_deploy.runtime.server import free_port

    grpc_port = free_port()
    tdeploy = Path(sys.executable).parent / "tdeploy"
    process = subprocess.Popen(
        [
            str(tdeploy),
            "serve",
            "--repository",
            str(model_repository),
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--no-log-server",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"COLUMNS": "200"},
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("  stop:"):
            break
    text = "".join(seen)
    assert "not loaded digits_cnn_trt" in text and f"gRPC     127.0.0.1:{grpc_port}" in text
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    assert client.is_model_ready("ctr") and client.is_model_ready("digits")
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "SIGTERM: stopping" in rest and "tritonserver exited with code 0" in rest
