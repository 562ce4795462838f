"""No single request takes serving down: deeply nested JSON, huge bodies, truncated batch dims."""

from __future__ import annotations

import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from servingtools import python_model
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from triton_deploy.runtime.http_guard import json_depth
from triton_deploy.runtime.server import HTTP_OFF_HEADER, TritonServer
from triton_deploy.runtime.supervisor import Supervisor

# 100 KB whose JSON is nested 50,000 deep inside an input's "data": SIGSEGV in Triton 2.51
NESTED = (
    b'{"inputs":[{"name":"X","shape":[1,1],"datatype":"FP32","data":'
    + b"[" * 50_000
    + b"]" * 50_000
    + b"}]}"
)
BACKENDS = Path(__file__).resolve().parents[2] / "src" / "triton_deploy" / "runtime" / "backends"


def _post(url: str, body: bytes, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status), reply.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _infer_ok(server: TritonServer) -> bool:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        x = grpcclient.InferInput("X", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[1.0]], np.float32))
        return float(client.infer("echo", [x]).as_numpy("Y")[0, 0]) == 2.0


@pytest.fixture
def echo_repository(tmp_path: Path) -> Path:
    python_model(tmp_path / "repo", "echo")
    return tmp_path / "repo"


@pytest.mark.server
def test_http_inference_is_off_by_default_health_and_metadata_stay(
    echo_repository: Path,
) -> None:
    with TritonServer(echo_repository) as server:
        status, body = _post(f"{server.http_url}/v2/models/echo/infer", NESTED)
        assert status == 403 and HTTP_OFF_HEADER.encode() in body
        for api in ("/v2/repository/index", "/v2/logging", "/v2/trace/setting"):
            assert _post(server.http_url + api, b"{}")[0] == 403, api
        for path in ("/v2/health/ready", "/v2/models/echo", "/v2/models/echo/config"):
            with urllib.request.urlopen(server.http_url + path, timeout=5) as reply:
                assert reply.status == 200, path
        assert server.wait(1.0) is None  # still running
        assert _infer_ok(server)  # gRPC inference is the product's protocol


@pytest.mark.server
def test_nested_json_crashes_bare_triton_and_the_guard_and_restart_keep_serving(
    echo_repository: Path,
) -> None:
    """--http-inference: the guard answers 400; bare Triton behind it dies (the upstream
    bug, reproduced on its private port) and the supervisor brings it back."""
    events: list[str] = []
    server = TritonServer(
        echo_repository, http_inference=True, http_max_body_bytes=1_000_000, on_event=events.append
    ).start()
    stop = threading.Event()
    supervisor = Supervisor(server, backoff_s=0.1, on_event=events.append)
    watcher = threading.Thread(target=supervisor.run, args=(stop,))
    watcher.start()
    try:
        status, body = _post(f"{server.http_url}/v2/models/echo/infer", NESTED)
        assert status == 400 and b"nested 50003 deep" in body and b"at most 64" in body
        status, body = _post(f"{server.http_url}/v2/models/echo/infer", b"[" * 2_000_000)
        assert status == 413 and b"over 1000000 bytes" in body
        ok = b'{"inputs":[{"name":"X","shape":[1,1],"datatype":"FP32","data":[[1.0]]}]}'
        status, body = _post(f"{server.http_url}/v2/models/echo/infer", ok)
        assert status == 200 and b'"data":[2.0]' in body, body
        assert server.wait(1.0) is None and not supervisor.causes

        first_pid = server.pid
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _post(f"http://127.0.0.1:{server._triton_http_port}/v2/models/echo/infer", NESTED)
        for _ in range(600):
            if any("restarted: ready" in e for e in events):
                break
            stop.wait(0.1)
        assert server.pid not in (None, first_pid)
        assert supervisor.causes and "killed by SIGSEGV" in supervisor.causes[0], events
        assert _infer_ok(server)
        status, _ = _post(f"{server.http_url}/v2/models/echo/infer", ok)
        assert status == 200  # the guard forwards to the restarted server
    finally:
        stop.set()
        watcher.join(timeout=90)


def test_json_depth_skips_strings_and_counts_both_brackets() -> None:
    assert json_depth(b'{"a": [1, 2, {"b": [[]]}]}') == 5
    assert json_depth(b'{"a": "[[[[[[[[", "b": "\\"[[[["}') == 1
    assert json_depth(b"3.5") == 0
    assert json_depth(NESTED) == 50_003


# -- the local backends' input checks ---------------------------------------------------------
@pytest.fixture(scope="module")
def batching() -> object:
    sys.path.insert(0, str(BACKENDS))
    try:
        import tdeploy_batching
    finally:
        sys.path.remove(str(BACKENDS))
    return tdeploy_batching


def test_check_inputs_rejects_what_does_not_fit_the_config(batching: object) -> None:
    expected = batching.input_shapes(  # type: ignore[attr-defined]
        {"max_batch_size": 64, "input": [{"name": "images", "dims": ["1", "8", "8"]}]}
    )
    check = batching.check_inputs  # type: ignore[attr-defined]
    assert check({"images": np.zeros((3, 1, 8, 8), np.float32)}, expected) is None
    missing = check({"images": np.zeros((1, 8, 8), np.float32)}, expected)
    assert "has shape [1, 8, 8], expected ['batch', 1, 8, 8]" in missing
    assert "2^32 or more is truncated" in missing
    assert "expected ['batch', 1, 8, 8]" in check({"images": np.zeros((2, 1, 8, 9))}, expected)
    too_many = check({"images": np.zeros((65, 1, 8, 8), np.float32)}, expected)
    assert "batch of 65 rows, over max_batch_size 64" in too_many


@pytest.mark.server
@pytest.mark.parametrize(
    ("model", "name", "dims", "dtype"),
    [
        ("digits_cnn", "images", [1, 8, 8], np.float32),
        ("ctr_xgb", "input__0", [46], np.float32),
        # The example's Python models check their inputs too. (Through an ensemble, Triton 2.51
        # hands its first step a one-row batch and answers without the batch dimension: no
        # backend can see it; the project's client refuses such a batch before sending.)
        ("digits_preprocess", "IMAGES", [8, 8], np.uint8),
        ("digits_postprocess", "logits", [10], np.float32),
    ],
)
def test_batch_dims_of_2_to_the_32_or_more_are_rejected_by_the_local_backends(
    triton_server: TritonServer, model: str, name: str, dims: list[int], dtype: type
) -> None:
    """[2^62, ...] with one row's bytes: Triton 2.51 truncates the batch to 0 and sends the
    backend a tensor without its batch dimension; the backend must not answer it."""
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    row = np.zeros([1, *dims], dtype)
    tensor = grpcclient.InferInput(name, [2**62, *dims], np_to_triton_dtype(row.dtype))
    tensor._raw_content = row.tobytes()  # the shape claims 2^62 rows; the bytes are one row
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert f"input tensor '{name}' has shape {dims}" in str(info.value)
    assert "truncated" in str(info.value)
    ok = grpcclient.InferInput(name, list(row.shape), np_to_triton_dtype(row.dtype))
    ok.set_data_from_numpy(row)
    output = client.get_model_metadata(model).outputs[0].name
    assert client.infer(model, [ok]).as_numpy(output).shape[0] == 1  # still serving
