"""Helpers for the chart tests: render charts/triton-deploy with Helm's own engine (helm_python)
and pick objects out of the result."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "triton-deploy"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
KUBE_VERSION = "1.30.0"
RELEASE = "prod"
NAMESPACE = "ml"
COLORS = ("blue", "green")
FULLNAME = f"{RELEASE}-triton-deploy"


def scenario_values(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load(SCENARIOS[name].read_text()))


def render(
    chart: helm_python.Chart, values: dict[str, Any], release: str = RELEASE
) -> dict[str, str]:
    """Template path (relative to templates/) -> rendered text, empty outputs dropped."""
    out = chart.render(values, name=release, namespace=NAMESPACE)
    prefix = f"{chart.name}/templates/"
    return {path.removeprefix(prefix): text for path, text in out.items() if text.strip()}


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def documents(rendered: dict[str, str]) -> dict[tuple[str, str], str]:
    """(kind, name) -> the exact rendered text of that object (for byte-identity checks)."""
    out: dict[tuple[str, str], str] = {}
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        for part in text.split("\n---\n"):
            doc = yaml.safe_load(part)
            if doc:
                out[(doc["kind"], doc["metadata"]["name"])] = part.strip("\n")
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployment(docs: list[dict[str, Any]], color: str) -> dict[str, Any]:
    return by_kind(docs, "Deployment")[f"{FULLNAME}-{color}"]


def container(deploy: dict[str, Any], name: str = "tritonserver") -> dict[str, Any]:
    spec = deploy["spec"]["template"]["spec"]
    for c in spec["containers"] + spec.get("initContainers", []):
        if c["name"] == name:
            return dict(c)
    raise AssertionError(f"no container {name} in {deploy['metadata']['name']}")


def all_containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for d in docs:
        if d["kind"] == "Deployment":
            spec = d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            spec = d["spec"]
        else:
            continue
        out += spec["containers"] + spec.get("initContainers", [])
    return out


def render_error(chart: helm_python.Chart, values: dict[str, Any]) -> str:
    with pytest.raises(helm_python.HelmError) as excinfo:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return str(excinfo.value)


def merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` deep-merged over it (as Helm merges -f files), both untouched."""
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` in ``args``; fails unless it appears exactly once."""
    values = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0] == name]
    assert len(values) == 1, f"{name} appears {len(values)} times in {args}"
    return values[0]


def pod_spec(deploy: dict[str, Any]) -> dict[str, Any]:
    return dict(deploy["spec"]["template"]["spec"])


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def grpc_health(address: str, timeout_s: float = 2.0) -> bytes | None:
    """Raw grpc.health.v1.Health/Check (empty request): the serialized reply, None on an error.

    b"\\x08\\x01" is HealthCheckResponse{status: SERVING}; no generated stubs needed.
    """
    import grpc

    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        try:
            return bytes(check(b"", timeout=timeout_s))
        except grpc.RpcError:
            return None


def grpc_ready_server_class() -> type:
    """TritonServer that waits on gRPC health instead of HTTP (the chart turns HTTP off)."""
    from triton_deploy.runtime.server import TritonServer

    class GrpcReadyTritonServer(TritonServer):
        def is_ready(self) -> bool:
            return grpc_health(self.grpc_url) == b"\x08\x01"

    return GrpcReadyTritonServer


# Flags the local runtime chooses itself (free ports, the example repository).
LOCAL_FLAGS = {"--model-repository", "--http-port", "--grpc-port", "--metrics-port"}
# Meaningful only with a GPU (CUDA memory pools, device limits).
GPU_ONLY_FLAGS = {
    "--cuda-memory-pool-byte-size",
    "--cuda-virtual-address-size",
    "--min-supported-compute-capability",
    "--model-load-gpu-limit",
    "--enable-peer-access",
}
# Stands in for the admin key Secret's value.
RESTRICTED_VALUE = "test-admin-value-not-a-secret"


def local_server_args(args: list[str], env: list[dict[str, Any]]) -> list[str]:
    """A rendered tritonserver command line, runnable here: minus LOCAL_FLAGS and GPU_ONLY_FLAGS,
    with $(RESTRICTED_KEY_VALUE) expanded as the kubelet would (from the Secret)."""
    out = []
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in LOCAL_FLAGS or name in GPU_ONLY_FLAGS:
            continue
        # The kubelet expands $(VAR) from the container's env; here the Secret's value is a test
        # string. Any other $(...) left would reach Triton verbatim: fail rather than guess.
        if "$(RESTRICTED_KEY_VALUE)" in arg:
            assert any(e["name"] == "RESTRICTED_KEY_VALUE" and "valueFrom" in e for e in env)
            arg = arg.replace("$(RESTRICTED_KEY_VALUE)", RESTRICTED_VALUE)
        assert "$(" not in arg, f"unexpanded variable in {arg}"
        out.append(arg)
    return out
