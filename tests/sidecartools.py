"""The chart's load shedder sidecar, run here as the kubelet would run it.

``chart_sidecar(values)`` renders charts/triton-deploy with Helm's own engine and returns the
color's ConfigMap (``haproxy.cfg``, ``run.sh``) and its Deployment. ``Sidecar`` runs exactly
that: the rendered config with the pod's fixed ports mapped to free ports on this machine
(``runtime.shedder.retarget``: the only change, since every "pod" here shares one network
namespace), and the rendered ``run.sh`` (HAProxy in master-worker mode, reloaded every max
connection age) with the ConfigMap's mount path mapped to a folder. Debian's HAProxy 2.6 stands
in for the image's 3.0; ``sh`` is dash instead of busybox.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from triton_deploy.runtime.server import free_port
from triton_deploy.runtime.shedder import retarget

CHART = Path(__file__).resolve().parents[1] / "charts" / "triton-deploy"
MOUNT = "/usr/local/etc/haproxy"
RELEASE, NAMESPACE = "triton", "ml"


def chart_sidecar(
    values: dict[str, Any], color: str = "blue"
) -> tuple[dict[str, str], dict[str, Any]]:
    """(the color's shedder ConfigMap data, its Deployment) as the chart renders them."""
    import helm_python

    out = helm_python.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE)
    docs = [
        d
        for path, text in out.items()
        if not path.endswith(".txt")
        for d in yaml.safe_load_all(text)
        if d
    ]
    configmap = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith(f"-{color}-shedder")
    )
    deploy = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(f"-{color}")
    )
    return dict(configmap["data"]), deploy


def prestop_seconds(deploy: dict[str, Any], container: str) -> float:
    """The ``sleep N`` of a container's preStop hook in a rendered Deployment."""
    for c in deploy["spec"]["template"]["spec"]["containers"]:
        if c["name"] == container:
            command = c["lifecycle"]["preStop"]["exec"]["command"]
            assert command[0] == "sleep", command
            return float(command[1])
    raise AssertionError(f"no container {container}")


class Sidecar:
    """The rendered sidecar (config + run.sh) in front of a Triton gRPC port on this machine."""

    def __init__(self, data: dict[str, str], upstream_port: int) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="tdeploy-sidecar-")
        folder = Path(self._dir.name)
        config = retarget(
            data["haproxy.cfg"],
            listen=("127.0.0.1", self.port),
            upstream=("127.0.0.1", upstream_port),
            metrics=("127.0.0.1", self.metrics_port),
        )
        (folder / "haproxy.cfg").write_text(config)
        assert data["run.sh"].count(MOUNT) == 1, data["run.sh"]
        (folder / "run.sh").write_text(data["run.sh"].replace(MOUNT, str(folder)))
        self.log = folder / "sidecar.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> Sidecar:
        folder = Path(self._dir.name)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                ["sh", str(folder / "run.sh")],
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sidecar exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sidecar did not listen: {self.log.read_text()[-2000:]}")

    def ready(self) -> bool:
        """The sidecar's readiness probe (GET /ready on its metrics port)."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/ready", timeout=2
            ) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as reply:
            return str(reply.read().decode())

    def terminate(self, timeout_s: float = 60.0) -> int | None:
        """What the kubelet does after preStop: SIGTERM (run.sh: HAProxy's soft stop)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group (run.sh, the master, its workers)."""
        if self.process is not None:
            import os

            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.terminate(timeout_s=20)
        if self.process is not None:
            self.kill()
        self._dir.cleanup()
