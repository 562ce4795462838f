"""Blue/green through a real L4 proxy: HAProxy in TCP mode stands in for a Kubernetes Service.

A Service (kube-proxy) keeps established TCP connections on the pods they reached; a selector
switch only affects new connections, and gRPC holds one long-lived HTTP/2 connection. Two real
tritonservers (blue answers 1, green answers 2) sit behind HAProxy, each behind the load
shedder sidecar exactly as the Helm chart renders it for the same values (its ConfigMap's
haproxy.cfg and run.sh, ports mapped: tests/sidecartools.py), as in the chart's pods. The switch
is made on the Service proxy's admin socket (enable green, disable blue), which, like
kube-proxy, leaves open connections where they are. Checked: without any connection age the
client stays on blue; with the client's ``max_connection_age_s``, or the chart's
``triton.grpc.maxConnectionAgeMs`` (Triton's flag behind the sidecar, and the sidecar's reload
period: HAProxy's GOAWAY to every client), traffic reaches green within a bounded time and no
call fails.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from sidecartools import Sidecar, chart_sidecar
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.clients import InferenceClient
from triton_deploy.runtime.server import TritonServer, free_port

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(
        shutil.which("haproxy") is None, reason="haproxy missing: run `bash .ci/system-deps`"
    ),
]

COLOR_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            color = np.full((x.shape[0], 1), {color}, dtype=np.int32)
            out.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("COLOR", color)]))
        return out
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


class HAProxy:
    def __init__(self, workdir: Path, blue: int, green: int) -> None:
        self.port = free_port()
        self.socket_path = workdir / "admin.sock"
        config = workdir / "haproxy.cfg"
        config.write_text(
            "global\n"
            f"  stats socket {self.socket_path} mode 600 level admin\n"
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n"
            f"frontend triton\n  bind 127.0.0.1:{self.port}\n  default_backend active\n"
            "backend active\n"
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

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            return sock.recv(65536).decode()

    def switch_to_green(self) -> None:
        self.admin("enable server active/green")
        self.admin("disable server active/blue")  # open connections stay, as with kube-proxy

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _chart_values(age_ms: int, grace_ms: int) -> dict[str, object]:
    return {
        "blue": {"modelRepository": {"uri": "s3://models/color"}},
        "triton": {
            "restrictedProtocols": {"enabled": False},
            "grpc": {"maxConnectionAgeMs": age_ms, "maxConnectionAgeGraceMs": grace_ms},
        },
    }


@contextmanager
def blue_green(tmp_path: Path, age_ms: int = 0, grace_ms: int = 0) -> Iterator[HAProxy]:
    """Two colors, each a tritonserver behind the chart's sidecar, behind the L4 'Service'."""
    data, deploy = chart_sidecar(_chart_values(age_ms, grace_ms))
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    server_args = [a for a in args if a.startswith("--grpc-max-connection-age")]
    servers, sidecars = [], []
    try:
        for color in (1, 2):
            repository = _color_repository(tmp_path / f"color{color}", color)
            servers.append(TritonServer(repository, extra_args=server_args).start())
            sidecars.append(Sidecar(data, servers[-1].grpc_port).start())
        proxy = HAProxy(tmp_path, sidecars[0].port, sidecars[1].port)
        try:
            yield proxy
        finally:
            proxy.stop()
    finally:
        for sidecar in sidecars:
            sidecar.close()
        for server in servers:
            server.stop()


def _traffic(
    client: InferenceClient, proxy: HAProxy, before_s: float, after_s: float
) -> list[tuple[float, int | str]]:
    """Calls from 4 threads; switch after ``before_s``; returns (seconds since switch, color)."""
    results: list[tuple[float, int | str]] = []
    switched_at: list[float] = []
    stop = threading.Event()
    x = np.zeros((1, 1), np.float32)

    def worker() -> None:
        while not stop.is_set():
            try:
                color: int | str = int(client.infer("color", X=x)["COLOR"][0, 0])
            except Exception as exc:  # every failure is recorded and fails the test
                color = f"{type(exc).__name__}: {exc}"
            t = time.monotonic()
            results.append((t - switched_at[0] if switched_at else -1.0, color))
            time.sleep(0.005)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(before_s)
    proxy.switch_to_green()
    switched_at.append(time.monotonic())
    time.sleep(after_s)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_without_connection_age_traffic_stays_on_the_old_color(tmp_path: Path) -> None:
    with (
        blue_green(tmp_path) as proxy,
        InferenceClient(f"127.0.0.1:{proxy.port}", max_connection_age_s=None) as client,
    ):
        results = _traffic(client, proxy, before_s=1.0, after_s=4.0)
    after = [c for t, c in results if t > 0]
    assert after and all(c == 1 for c in after)  # the problem the connection age solves


def test_client_connection_age_moves_traffic_within_the_bound_without_errors(
    tmp_path: Path,
) -> None:
    age = 2.0
    with (
        blue_green(tmp_path) as proxy,
        InferenceClient(f"127.0.0.1:{proxy.port}", max_connection_age_s=age) as client,
    ):
        results = _traffic(client, proxy, before_s=1.0, after_s=age + 3.0)
    errors = [c for _, c in results if isinstance(c, str)]
    assert not errors, errors[:3]
    assert all(c == 1 for t, c in results if t < 0)
    late = [c for t, c in results if t > age + 0.5]
    assert late and all(c == 2 for c in late), (
        "traffic did not reach green within max_connection_age_s"
    )


def test_server_max_connection_age_moves_a_long_lived_client(tmp_path: Path) -> None:
    """The chart's max connection age: the sidecar's reload every 1.5 s says GOAWAY to every
    client (Triton's own --grpc-max-connection-age only reaches the sidecar), so even a
    never-recycling client moves, without a failed call."""
    with (
        blue_green(tmp_path, age_ms=1500, grace_ms=1000) as proxy,
        InferenceClient(f"127.0.0.1:{proxy.port}", max_connection_age_s=None) as client,
    ):
        results = _traffic(client, proxy, before_s=1.0, after_s=5.0)
    errors = [c for _, c in results if isinstance(c, str)]
    assert not errors, errors[:3]
    late = [c for t, c in results if t > 3.0]
    assert late and all(c == 2 for c in late)
