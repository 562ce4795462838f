"""A cluster for the rollout driver's tests, made of real parts where they can run here.

- Kubernetes API: kmock's ``KubernetesEmulator`` over real HTTP, in a background thread, with
  a kubeconfig pointing at it (``apiserver.DryRunEmulator``: plus server-side dry runs). MOCKED, because no API server runs here: the emulator stores
  objects but runs no controllers, so ``Kubelet`` below plays the Deployment controller and
  the kubelet, and the API server's pod proxy (``/pods/NAME:PORT/proxy/...``) is a reaction
  that forwards to the real tritonserver standing for that pod.
- helm: the TEST STAND-IN ``standin/helm_standin.py`` on PATH as ``helm`` (the helm CLI cannot
  be installed here); it renders the real chart with Helm's own engine and applies it.
- Pods: ``Kubelet`` watches the Deployments and, for each color with replicas, starts a REAL
  tritonserver with what the Deployment's own container args say (its ``--model-repository``
  URI mapped to a local folder, its ``--grpc-max-connection-age(-grace)``, its
  ``--metrics-config``) and, when the pod has the chart's ``shedder`` container, the load
  shedder sidecar in front of it exactly as rendered (the ConfigMap's haproxy.cfg and run.sh
  read from the API, ports mapped: tests/sidecartools.py); writes the Deployment's status and
  Pod objects as the controller and kubelet would, restarts the pod when its template changes
  and, when the color is scaled to 0, terminates it as the kubelet does: each container's
  preStop sleep, then SIGTERM (the shedder stops accepting first, Triton drains after its
  longer sleep). One pod stands for all replicas of a color.
- Services: ``ServiceProxy`` is HAProxy in TCP mode (an L4 proxy, like kube-proxy: a switch
  leaves open connections where they are) with one frontend per Service; an adapter thread
  points each frontend at the color the emulator's Service selects, once its pods are ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import numpy as np
import onnx
import yaml
from apiserver import DryRunEmulator
from google.protobuf import text_format
from onnx import TensorProto, helper
from sidecartools import Sidecar, prestop_seconds
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build.golden import GoldenCase, golden_case_path
from triton_deploy.errors import ServerStartError
from triton_deploy.rollout import Cluster
from triton_deploy.runtime.server import TritonServer, free_port

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "triton-deploy"
STANDIN = Path(__file__).resolve().parent / "standin" / "helm_standin.py"
NAMESPACE = "ml"
RELEASE = "triton"
FULLNAME = f"{RELEASE}-triton-deploy"
MODEL = "tiny"
TDEPLOY = str(Path(sys.executable).parent / "tdeploy")

RESOURCES = {
    "v1/services": "Service",
    "v1/pods": "Pod",
    "v1/secrets": "Secret",
    "v1/configmaps": "ConfigMap",
    "v1/serviceaccounts": "ServiceAccount",
    "apps/v1/deployments": "Deployment",
    "coordination.k8s.io/v1/leases": "Lease",
    "policy/v1/poddisruptionbudgets": "PodDisruptionBudget",
    "autoscaling/v2/horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
    "gateway.networking.k8s.io/v1/grpcroutes": "GRPCRoute",
}

# Base values of the test release: CPU only, no admin Secret, short connection age and exit
# timeout so that a full rollout takes seconds; latency summaries on for the p99.
BASE_VALUES: dict[str, Any] = {
    "gpu": {"enabled": False},
    "triton": {
        "restrictedProtocols": {"enabled": False},
        "grpc": {"maxConnectionAgeMs": 1500, "maxConnectionAgeGraceMs": 1000},
        "exitTimeoutSecs": 3,
        "extraArgs": ["--metrics-config=summary_latencies=true"],
    },
    "shutdown": {"endpointPropagationSeconds": 1},
    # the shedder's queue wait bounds its drain, hence Triton's preStop: keep rollouts short
    "overload": {"queueTimeoutMs": 2000},
    "blue": {"enabled": True, "replicas": 1, "modelRepository": {"uri": "s3://models/v1"}},
}
AGE_S, GRACE_S = 1.5, 1.0


# -- model repositories ----------------------------------------------------------------------------
def _config(platform: str = "", backend: str = "") -> mc.ModelConfig:
    return mc.ModelConfig(
        name=MODEL,
        platform=platform,
        backend=backend,
        max_batch_size=8,
        input=[mc.ModelInput(name="X", data_type=mc.TYPE_FP32, dims=[1])],
        output=[
            mc.ModelOutput(name="Y", data_type=mc.TYPE_FP32, dims=[1]),
            mc.ModelOutput(name="V", data_type=mc.TYPE_FP32, dims=[1]),
        ],
        # One instance (Triton's default on CPU is two): each Python-based instance is a stub
        # process that takes about 1.2 s to exit when its pod is drained or stopped (measured,
        # one after the other), and a color's pod here stops two or three times per test.
        instance_group=[mc.ModelInstanceGroup(count=1, kind=mc.ModelInstanceGroup.KIND_CPU)],
    )


def expected(x: np.ndarray, version: int) -> dict[str, np.ndarray]:
    """What version ``version`` of the tiny model answers: Y = v*X + v, V = v."""
    return {"Y": (x * version + version).astype(np.float32), "V": np.full_like(x, version)}


def tiny_repository(root: Path, version: int) -> Path:
    """A repository with the ONNX model ``tiny`` at Triton version ``version`` (served by the
    project's Python-based onnxruntime backend): Y = v*X + v, V = v."""
    v = helper.make_tensor("v", TensorProto.FLOAT, [1], [float(version)])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["X", "v"], ["xv"]),
            helper.make_node("Add", ["xv", "v"], ["Y"]),
            helper.make_node("Mul", ["X", "zero"], ["x0"]),
            helper.make_node("Add", ["x0", "v"], ["V"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 1])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("V", TensorProto.FLOAT, ["batch", 1]),
        ],
        initializer=[v, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder = root / MODEL / str(version)
    folder.mkdir(parents=True)
    onnx.save(model, folder / "model.onnx")
    config = _config(platform="onnxruntime_onnx")
    (root / MODEL / "config.pbtxt").write_text(text_format.MessageToString(config))
    return root


BAD_MODEL = """
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    # Version {version} with a bug: any input above 0.9 fails (the golden cases stay below 0.5,
    # so the build's parity check passes; production traffic hits it). It raises: Triton 2.51
    # counts an exception from execute() in nv_inference_request_failure, but a returned error
    # response as a success (triton-inference-server/server#7713).
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            if (x > 0.9).any():
                raise pb_utils.TritonModelException("tiny v{version}: input above 0.9 not supported")
            y = (x * {version} + {version}).astype(np.float32)
            v = np.full_like(x, {version})
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("Y", y), pb_utils.Tensor("V", v)]))
        return responses
"""


def bad_repository(root: Path, version: int) -> Path:
    """Version ``version`` that fails every request with an input above 0.9 (Python model)."""
    folder = root / MODEL / str(version)
    folder.mkdir(parents=True)
    (folder / "model.py").write_text(BAD_MODEL.format(version=version))
    (root / MODEL / "config.pbtxt").write_text(
        text_format.MessageToString(_config(backend="python"))
    )
    return root


def broken_repository(root: Path) -> Path:
    """A repository whose model cannot load (an ONNX file that is not ONNX)."""
    folder = root / MODEL / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not an onnx model")
    (root / MODEL / "config.pbtxt").write_text(
        text_format.MessageToString(_config(platform="onnxruntime_onnx"))
    )
    return root


def write_golden(repository: Path, version: int, *, tolerance: float = 1e-6) -> Path:
    """The golden case of ``tiny`` as version ``version`` answers (inputs in [0, 0.5)), where a
    build keeps it: ``<repository>/tiny/golden.npz``."""
    x = np.random.default_rng(0).uniform(0, 0.5, size=(16, 1)).astype(np.float32)
    path = golden_case_path(repository, MODEL)
    case = GoldenCase(
        inputs={"X": x}, expected=expected(x, version), atol=tolerance, rtol=tolerance
    )
    case.save(path)
    return path


# -- the Kubernetes API (emulated) -----------------------------------------------------------------
class Emulator:
    """KubernetesEmulator on a free port, in its own thread, with a kubeconfig for it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.metrics_urls: dict[str, str] = {}  # pod name -> the real server's /metrics
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.emulator: Any = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name="kmock", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Kubernetes emulator did not start")
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "emu", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}
                    ],
                    "users": [{"name": "emu", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "emu"}}],
                    "current-context": "emu",
                }
            )
        )

    def _proxy(self, request: Any) -> bytes:
        """Stand-in for the API server's pod proxy: GET the pod's real /metrics."""
        pod = str(request.name).split(":", 1)[0]
        url = self.metrics_urls.get(pod)
        if url is None:
            raise kmock.KubernetesNotFoundError()
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bytes(reply.read())

    def _serve(self) -> None:
        async def main() -> None:
            # kmock's emulator, plus server-side dry runs (apiserver.py)
            async with DryRunEmulator() as emulator, kmock.Server(emulator) as server:
                for resource, kind in RESOURCES.items():
                    emulator.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=True)
                proxy = re.compile(r"/api/v1/namespaces/[^/]+/pods/[^/]+/proxy/.*")
                emulator["get", proxy] << self._proxy
                self.emulator, self.port = emulator, server.port
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()

        asyncio.run(main())

    def cluster(self) -> Cluster:
        return Cluster(NAMESPACE, kubeconfig=str(self.kubeconfig))

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


# -- the Deployment controller and kubelet (stand-in) ---------------------------------------------
_ARGS_KEPT = ("--grpc-max-connection-age", "--metrics-config", "--strict-readiness")


@dataclass
class PodSet:
    """The pods of one color: one real tritonserver standing for every replica."""

    color: str
    template: str  # hash of the pod template it runs
    args: list[str]
    server: TritonServer | None = None
    sidecar: Sidecar | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the Deployment as the pod was made
    ready: bool = False
    failed: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    pid: int | None = None


class Kubelet:
    """Plays the Deployment controller and the kubelet (see the module docstring)."""

    def __init__(self, emulator: Emulator, repositories: dict[str, Path]) -> None:
        self.emulator = emulator
        self.repositories = repositories  # --model-repository URI -> local folder
        self.cluster = emulator.cluster()
        self.pods: dict[str, PodSet] = {}  # Deployment name -> its pods
        self.hold: set[str] = set()  # colors whose pods do not start yet (slow image pull)
        self.starts: list[tuple[float, str, str]] = []  # (time, color, repository)
        self.stops: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()

    def ready_server(self, color: str) -> TritonServer | None:
        with self._lock:
            for pods in self.pods.values():
                if pods.color == color and pods.ready:
                    return pods.server
        return None

    def ready_port(self, color: str) -> int | None:
        """The port a Service reaches on the color's ready pod: the shedder's when the pod has
        one (targetPort grpc), else Triton's gRPC port."""
        with self._lock:
            for pods in self.pods.values():
                if pods.color == color and pods.ready and pods.server is not None:
                    return pods.sidecar.port if pods.sidecar else pods.server.grpc_port
        return None

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._reconcile()
            except Exception as exc:  # recorded; a test asserting on it fails
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _start(self, name: str, pods: PodSet) -> None:
        uri = next(
            (a.split("=", 1)[1] for a in pods.args if a.startswith("--model-repository=")), ""
        )
        self.starts.append((time.time(), pods.color, uri))
        repository = self.repositories.get(uri)
        if repository is None:
            pods.failed = f"cannot read {uri}"
            return
        extra = [a for a in pods.args if a.startswith(_ARGS_KEPT)]
        exit_timeout = next(
            (int(a.split("=", 1)[1]) for a in pods.args if a.startswith("--exit-timeout-secs=")),
            5,
        )
        server = TritonServer(repository, extra_args=extra, exit_timeout_s=exit_timeout)
        try:
            server.start()
        except ServerStartError as exc:
            pods.failed = str(exc).splitlines()[0]
            return
        pods.server, pods.pid = server, server.pid
        containers = pods.spec["spec"]["template"]["spec"]["containers"]
        if any(c["name"] == "shedder" for c in containers):
            volume = next(
                v["configMap"]["name"]
                for v in pods.spec["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "shedder-config"
            )
            # like the kubelet, wait for the ConfigMap the pod mounts (helm may apply it after
            # the Deployment)
            deadline = time.monotonic() + 60
            while (configmap := self.cluster.get("v1", "configmaps", volume)) is None:
                if time.monotonic() > deadline:
                    pods.failed = f"configmap {volume} not found"
                    server.stop()
                    return
                time.sleep(0.2)
            pods.sidecar = Sidecar(configmap["data"], server.grpc_port).start()
        with self._lock:
            if self.pods.get(name) is pods:
                pods.ready = True
                return
        self._stop_pod(pods)  # superseded while starting

    def _terminate(self, pods: PodSet) -> None:
        pods.ready = False
        if pods.server is not None:
            self.stops.append((time.time(), pods.color))
            threading.Thread(target=self._stop_pod, args=(pods,), daemon=True).start()

    def _stop_pod(self, pods: PodSet) -> None:
        """The kubelet's termination: every container's preStop runs at once, each container
        gets SIGTERM when its own preStop is over."""
        server, sidecar = pods.server, pods.sidecar
        pods.server = None
        threads = []
        if sidecar is not None:

            def stop_sidecar() -> None:
                time.sleep(prestop_seconds(pods.spec, "shedder"))
                sidecar.terminate()
                sidecar.close()

            threads.append(threading.Thread(target=stop_sidecar, daemon=True))
        if server is not None:

            def stop_server() -> None:
                if sidecar is not None:  # the chart's order (without a sidecar: as before)
                    time.sleep(prestop_seconds(pods.spec, "tritonserver"))
                server.stop()

            threads.append(threading.Thread(target=stop_server, daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _reconcile(self) -> None:
        deployments = {
            d["metadata"]["name"]: d for d in self.cluster.list_objects("apps/v1", "deployments")
        }
        pod_names = {p["metadata"]["name"] for p in self.cluster.list_objects("v1", "pods")}
        for name in list(self.pods):
            if name not in deployments:
                self._terminate(self.pods.pop(name))
        for name, deployment in deployments.items():
            spec = deployment["spec"]
            color = deployment["metadata"]["labels"]["color"]
            replicas = int(spec.get("replicas", 1))
            template = hashlib.sha256(
                json.dumps(spec["template"], sort_keys=True).encode()
            ).hexdigest()[:10]
            container = spec["template"]["spec"]["containers"][0]
            with self._lock:
                current = self.pods.get(name)
            if replicas == 0 or color in self.hold:
                if current is not None:
                    self._terminate(self.pods.pop(name))
            elif current is None or current.template != template:
                fresh = PodSet(color, template, list(container.get("args", [])), spec=deployment)
                with self._lock:
                    self.pods[name] = fresh
                if current is not None:
                    self._terminate(current)
                threading.Thread(target=self._start, args=(name, fresh), daemon=True).start()
            pods = self.pods.get(name)
            ready = replicas if pods is not None and pods.ready else 0
            self._write_status(deployment, replicas, ready)
            self._write_pods(deployment, template, replicas if ready else 0, container, pod_names)

    def _write_status(self, deployment: dict[str, Any], replicas: int, ready: int) -> None:
        status = {
            "observedGeneration": int(deployment["metadata"].get("generation") or 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {"type": "Available", "status": "True" if ready >= replicas else "False"}
            ],
        }
        if (deployment.get("status") or {}) != status:
            self.cluster.patch(
                "apps/v1",
                "deployments",
                f"{deployment['metadata']['name']}/status",
                {"status": status},
            )

    def _write_pods(
        self,
        deployment: dict[str, Any],
        template: str,
        count: int,
        container: dict[str, Any],
        pod_names: set[str],  # every pod, listed once per pass (a Deployment's own are its name-*)
    ) -> None:
        name = deployment["metadata"]["name"]
        prefix = f"{name}-{template}-"
        existing = {pod for pod in pod_names if pod.startswith(f"{name}-")}
        wanted = {f"{prefix}{i}" for i in range(count)}
        pods = self.pods.get(name)
        for pod in sorted(wanted - existing):
            self.cluster.create(
                "v1",
                "pods",
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod,
                        "namespace": NAMESPACE,
                        "labels": deployment["spec"]["template"]["metadata"]["labels"],
                    },
                    "spec": {
                        "containers": [
                            {"name": container["name"], "ports": container.get("ports", [])}
                        ]
                    },
                    "status": {"phase": "Running", "podIP": "127.0.0.1"},
                },
            )
            if pods is not None and pods.server is not None:
                self.emulator.metrics_urls[pod] = pods.server.metrics_url
        for pod in existing - wanted:
            self.cluster.delete("v1", "pods", pod)
            self.emulator.metrics_urls.pop(pod, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

        # The test is over and the node goes away with it: its pods are killed, not drained (a
        # drain takes about 1.2 s per Python-based model instance here, and no test looks at
        # it; the tests of a pod's termination stop it through _terminate: preStop, drain).
        for pods in self.pods.values():
            if pods.sidecar is not None:
                pods.sidecar.close()
            if pods.server is not None:
                if pods.server.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pods.server.pid, signal.SIGKILL)  # tritonserver and its stubs
                pods.server.stop()  # reaps it; removes its shared memory and work folder
        self.pods.clear()


# -- the Services (HAProxy in TCP mode) -------------------------------------------------------------
def services_by_name(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Every Service, by name: one list a pass, as kube-proxy and gateway controllers watch
    them all (not a read per Service)."""
    return {s["metadata"]["name"]: s for s in cluster.list_objects("v1", "services")}


class ServiceProxy:
    """HAProxy with a frontend per Service; an adapter follows the emulator's selectors."""

    def __init__(self, workdir: Path, emulator: Emulator, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.cluster = emulator.cluster()
        self.ports = {"active": free_port(), "preview": free_port()}
        self.socket_path = workdir / "haproxy.sock"
        config = workdir / "haproxy.cfg"
        lines = [
            "global",
            f"  stats socket {self.socket_path} mode 600 level admin",
            "defaults",
            "  mode tcp",
            "  timeout connect 2s",
            "  timeout client 60s",
            "  timeout server 60s",
        ]
        for role, port in self.ports.items():
            lines += [
                f"frontend {role}",
                f"  bind 127.0.0.1:{port}",
                f"  default_backend {role}",
                f"backend {role}",
                "  server blue 127.0.0.1:1 disabled",
                "  server green 127.0.0.1:1 disabled",
            ]
        config.write_text("\n".join(lines) + "\n")
        subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True)
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.state: dict[str, tuple[str, int] | None] = {"active": None, "preview": None}
        self.switches: list[tuple[float, str, str]] = []  # (time, role, color)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="service-proxy", daemon=True)
        self._thread.start()

    def url(self, role: str) -> str:
        return f"127.0.0.1:{self.ports[role]}"

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            return sock.recv(65536).decode()

    def _loop(self) -> None:
        names = {"active": FULLNAME, "preview": f"{FULLNAME}-preview"}
        while not self._stop.wait(0.15):
            try:
                services = services_by_name(self.cluster)
                for role, name in names.items():
                    service = services.get(name)
                    color = (service or {}).get("spec", {}).get("selector", {}).get("color")
                    port = self.kubelet.ready_port(color) if color else None
                    endpoint = (color, port) if port is not None else None
                    if endpoint != self.state[role]:
                        self._point(role, endpoint)
            except Exception as exc:  # recorded; a test asserting on it fails
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _point(self, role: str, endpoint: tuple[str, int] | None) -> None:
        """Like kube-proxy: new connections go to the selected color's ready pods; the other
        server is disabled, which leaves its open connections alone."""
        if endpoint is not None:
            color, port = endpoint
            self.admin(f"set server {role}/{color} addr 127.0.0.1 port {port}")
            self.admin(f"enable server {role}/{color}")
        for other in ("blue", "green"):
            if endpoint is None or other != endpoint[0]:
                self.admin(f"disable server {role}/{other}")
        self.state[role] = endpoint
        self.switches.append((time.time(), role, endpoint[0] if endpoint else "-"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.process.terminate()
        self.process.wait(timeout=10)


# -- helm on PATH ------------------------------------------------------------------------------------
def install_helm_standin(bindir: Path) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    helm = bindir / "helm"
    helm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    helm.chmod(0o755)
    return helm


@dataclass
class RolloutCluster:
    """Everything together; ``env`` is the environment the driver (and helm) run with."""

    workdir: Path
    emulator: Emulator
    kubelet: Kubelet
    proxy: ServiceProxy
    env: dict[str, str]
    repositories: dict[str, Path]

    @property
    def kubeconfig(self) -> str:
        return str(self.emulator.kubeconfig)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["helm", *args, "-n", NAMESPACE, "--kubeconfig", self.kubeconfig],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
        )

    def install(self, values: dict[str, Any] | None = None) -> None:
        path = self.workdir / "values.yaml"
        merged = json.loads(json.dumps(BASE_VALUES))
        for key, value in (values or {}).items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
        path.write_text(yaml.safe_dump(merged))
        self.helm("upgrade", RELEASE, str(CHART), "--install", "-f", str(path))
        self.wait_for(lambda: self.kubelet.ready_server("blue") is not None, 120, "blue ready")
        self.wait_for(lambda: self.proxy.state["active"] is not None, 30, "active Service routed")
        self.wait_for(self._settled, 30, "blue's Deployment status and Pod written")

    def _settled(self) -> bool:
        cluster = self.emulator.cluster()
        blue = cluster.get("apps/v1", "deployments", f"{FULLNAME}-blue") or {}
        pods = [
            p
            for p in cluster.list_objects("v1", "pods")
            if p["metadata"]["name"].startswith(f"{FULLNAME}-blue-")
        ]
        return (blue.get("status") or {}).get("availableReplicas") == 1 and len(pods) == 1

    def history(self) -> list[dict[str, Any]]:
        return list(json.loads(self.helm("history", RELEASE, "-o", "json").stdout))

    def values(self) -> dict[str, Any]:
        return dict(json.loads(self.helm("get", "values", RELEASE, "-o", "json").stdout))

    def objects(self) -> dict[tuple[str, str], Any]:
        """A snapshot of every object in the emulator (for "nothing changed" checks)."""
        return {
            (str(key[0]), str(key[2])): json.dumps(dict(obj.raw), sort_keys=True, default=str)
            for key, obj in list(self.emulator.emulator.objects.items())
            if not obj.deleted
        }

    def tdeploy(
        self, *args: str, kubeconfig: str | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI as a subprocess against this cluster."""
        return subprocess.run(
            [TDEPLOY, *args, "-n", NAMESPACE, "--kubeconfig", kubeconfig or self.kubeconfig],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [TDEPLOY, *args, "-n", NAMESPACE, "--kubeconfig", self.kubeconfig],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.1)

    def record(self) -> dict[str, Any] | None:
        cm = self.emulator.cluster().get("v1", "configmaps", f"{FULLNAME}-rollout")
        return json.loads(cm["data"]["current"]) if cm else None


@contextlib.contextmanager
def make_cluster(workdir: Path, repositories: dict[str, Path]) -> Iterator[RolloutCluster]:
    workdir.mkdir(parents=True, exist_ok=True)
    emulator = Emulator(workdir)
    kubelet = Kubelet(emulator, repositories)
    proxy = ServiceProxy(workdir, emulator, kubelet)
    bindir = workdir / "bin"
    install_helm_standin(bindir)
    env = dict(os.environ)
    env["PATH"] = (
        f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    )
    env["PYTHONUNBUFFERED"] = "1"
    # The s3:// URIs here are names the stand-in kubelet maps to local folders, not buckets: the
    # driver's own read of the repository is tested against a real S3 endpoint (moto) in
    # test_rollout_repository_check.py.
    env["TDEPLOY_SKIP_REPOSITORY_CHECK"] = "1"
    try:
        yield RolloutCluster(workdir, emulator, kubelet, proxy, env, repositories)
    finally:
        proxy.stop()
        kubelet.stop()
        emulator.stop()
