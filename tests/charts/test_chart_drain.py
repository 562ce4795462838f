"""A pod of the chart stops without failing a single request: its preStop, end to end.

A Kubernetes pod deletion is replayed with real parts: two real tritonservers run with the
command lines the chart renders (blue and green), each behind the load shedder sidecar the chart
renders (its ConfigMap's haproxy.cfg and run.sh: tests/sidecartools.py), behind HAProxy in TCP
mode standing in for the Service (like kube-proxy it keeps established connections where they
are). A plain tritonclient gRPC client holds one long-lived connection and never recycles it;
four threads call a model that takes 20 ms. Then blue's pod is "deleted": its endpoint leaves the
Service (HAProxy disables it), each container's rendered preStop sleep runs, and each container
gets SIGTERM after its own, as the kubelet does: the shedder first (it stops accepting, says
GOAWAY to the client, lets what it holds finish), Triton after its longer sleep.

With the chart's preStop every call succeeds: the client has moved to green before blue stops.
The control run has no preStop: SIGTERM to both at the deletion, 0.5 s before the endpoint
removal (endpoints change asynchronously): calls fail, so the test can tell the difference.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from charttools import (
    CHART,
    NAMESPACE,
    RELEASE,
    container,
    deployment,
    grpc_ready_server_class,
    local_server_args,
    merge,
    objects,
    scenario_values,
)
from google.protobuf import text_format
from sidecartools import Sidecar, chart_sidecar, prestop_seconds
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.runtime.server import free_port

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        shutil.which("haproxy") is None, reason="haproxy missing: run `bash .ci/system-deps`"
    ),
]

TritonServer = grpc_ready_server_class()

# Short connection age so that the test takes seconds; the chart derives everything else.
VALUES = merge(
    scenario_values("blue-green-both-up"),
    {
        "triton": {"grpc": {"maxConnectionAgeMs": 2000, "maxConnectionAgeGraceMs": 1000}},
        "shutdown": {"endpointPropagationSeconds": 1},
    },
)

COLOR_MODEL = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        time.sleep(0.02)
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
                "COLOR", np.full((pb_utils.get_input_tensor_by_name(r, "X").as_numpy().shape[0], 1), {color}, dtype=np.int32))])
            for r in requests
        ]
"""


def _color_repository(root: Path, color: int) -> Path:
    model = root / "color"
    (model / "1").mkdir(parents=True)
    config = mc.ModelConfig(
        name="color",
        backend="python",
        max_batch_size=8,
        input=[mc.ModelInput(name="X", data_type=mc.TYPE_FP32, dims=[1])],
        output=[mc.ModelOutput(name="COLOR", data_type=mc.TYPE_INT32, dims=[1])],
    )
    (model / "config.pbtxt").write_text(text_format.MessageToString(config))
    (model / "1" / "model.py").write_text(COLOR_MODEL.format(color=color))
    return root


def _rendered(color: str) -> tuple[list[str], int]:
    """The color's tritonserver args (runnable here) and its rendered preStop sleep."""
    import helm_python

    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(VALUES, name=RELEASE, namespace=NAMESPACE)
    docs = objects(
        {k: v for k, v in rendered.items() if k.endswith("deployment.yaml") and v.strip()}
    )
    triton = container(deployment(docs, color))
    pre_stop = int(triton["lifecycle"]["preStop"]["exec"]["command"][1])
    return local_server_args(triton["args"], triton.get("env", [])), pre_stop


class ServiceProxy:
    """HAProxy in TCP mode: a Service with two endpoints, blue and green."""

    def __init__(self, workdir: Path, blue: int, green: int) -> None:
        self.port = free_port()
        self.socket_path = workdir / "admin.sock"
        config = workdir / "haproxy.cfg"
        config.write_text(
            "global\n"
            f"  stats socket {self.socket_path} mode 600 level admin\n"
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n"
            f"frontend service\n  bind 127.0.0.1:{self.port}\n  default_backend endpoints\n"
            "backend endpoints\n"
            f"  server blue 127.0.0.1:{blue}\n"
            f"  server green 127.0.0.1:{green} disabled\n"
        )
        subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True)
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def admin(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            sock.recv(65536)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _delete_blue_pod(
    tmp_path: Path, pre_stop_s: float, shedder_pre_stop_s: float, endpoint_lag_s: float = 0.0
) -> dict[str, Any]:
    """Replays a pod deletion of blue under load; returns what the client saw and timings.
    ``endpoint_lag_s``: how long after the deletion the Service's endpoints drop blue."""
    blue_args, _ = _rendered("blue")
    green_args, _ = _rendered("green")
    blue = TritonServer(_color_repository(tmp_path / "blue", 1), extra_args=blue_args).start()
    green = TritonServer(_color_repository(tmp_path / "green", 2), extra_args=green_args).start()
    blue_shedder = Sidecar(chart_sidecar(VALUES, "blue")[0], blue.grpc_port).start()
    green_shedder = Sidecar(chart_sidecar(VALUES, "green")[0], green.grpc_port).start()
    proxy = ServiceProxy(tmp_path, blue_shedder.port, green_shedder.port)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{proxy.port}")
    results: list[tuple[float, int | str]] = []
    stop = threading.Event()
    x = grpcclient.InferInput("X", [1, 1], "FP32")
    x.set_data_from_numpy(np.zeros((1, 1), np.float32))
    try:

        def worker() -> None:
            while not stop.is_set():
                try:
                    reply = client.infer("color", [x], client_timeout=10)
                    answer: int | str = int(reply.as_numpy("COLOR")[0, 0])
                except Exception as exc:  # every failure is recorded and counted
                    answer = f"{type(exc).__name__}: {exc}"
                results.append((time.monotonic(), answer))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # the client's connection is on blue, the only endpoint so far
        proxy.admin("enable server endpoints/green")  # a second ready pod
        time.sleep(0.5)
        deleted = time.monotonic()

        def drop_endpoint() -> None:  # the endpoints drop the deleted pod
            time.sleep(endpoint_lag_s)
            proxy.admin("disable server endpoints/blue")

        endpoint_thread = threading.Thread(target=drop_endpoint)
        endpoint_thread.start()
        if not endpoint_lag_s:
            endpoint_thread.join()

        def stop_shedder() -> None:  # its own preStop, then SIGTERM: soft stop
            time.sleep(shedder_pre_stop_s)
            blue_shedder.terminate()

        shedder_thread = threading.Thread(target=stop_shedder)
        shedder_thread.start()
        time.sleep(pre_stop_s)  # preStop
        assert blue.pid is not None
        os.kill(blue.pid, signal.SIGTERM)  # the kubelet, after preStop
        sigterm = time.monotonic()
        exit_code = blue.wait()
        shedder_thread.join(timeout=60)
        endpoint_thread.join(timeout=60)
        exited = time.monotonic()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    finally:
        client.close()
        proxy.stop()
        blue_shedder.close()
        green_shedder.close()
        blue.stop()
        green.stop()
    return {
        "results": results,
        "deleted": deleted,
        "sigterm": sigterm,
        "exit_code": exit_code,
        "exit_s": exited - sigterm,
    }


def test_pre_stop_lets_every_request_finish_when_a_pod_stops(tmp_path: Path) -> None:
    _, pre_stop = _rendered("blue")
    # What the shedder may still hold once it stops accepting (1000 ms grace + 5000 ms queue
    # timeout = 6 s) is more than the connections' age-out (2000 ms + 10 % + 1000 ms = 3.2 s),
    # + 1 s for the endpoints.
    assert pre_stop == 7
    shedder_pre_stop = prestop_seconds(chart_sidecar(VALUES, "blue")[1], "shedder")
    assert shedder_pre_stop == 1  # the endpoints' propagation: it stops accepting first
    run = _delete_blue_pod(tmp_path, pre_stop, shedder_pre_stop)
    errors = [a for _, a in run["results"] if isinstance(a, str)]
    assert not errors, f"{len(errors)} failed calls, e.g. {errors[:3]}"
    answers = [(t, a) for t, a in run["results"]]
    assert any(a == 1 for t, a in answers if t < run["deleted"])  # blue served first
    # The client moved to green while blue was still up, and only green answered after SIGTERM.
    assert any(a == 2 for t, a in answers if run["deleted"] < t < run["sigterm"])
    assert all(a == 2 for t, a in answers if t > run["sigterm"])
    assert run["exit_code"] == 0
    print(f"blue exited {run['exit_s']:.2f} s after SIGTERM; {len(answers)} calls, 0 failed")


def test_control_without_pre_stop_fails_calls(tmp_path: Path) -> None:
    # Without preStop the kubelet's SIGTERM can come before the endpoints drop the pod (they
    # change asynchronously: the chart's shedder preStop of 1 s is for that), here by 0.5 s.
    # With the endpoint dropped first, a busy machine (parallel test workers) could move the
    # client to green on its own before blue's model unloaded: that run failed no call.
    run = _delete_blue_pod(tmp_path, 0.0, 0.0, endpoint_lag_s=0.5)
    errors = [a for _, a in run["results"] if isinstance(a, str)]
    assert errors, "stopping blue at once failed no call: the drain test above proves nothing"
    print(f"without preStop: {len(errors)} of {len(run['results'])} calls failed, e.g. {errors[0]}")
