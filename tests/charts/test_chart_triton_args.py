"""The chart's tritonserver command line is a real one.

For every ci/ scenario and color, the args of the rendered Deployment are parsed and the local
tritonserver 2.51 (the release of the chart's default 24.10 image) is started with the same flags,
minus the repository/port flags (the local runtime picks its own) and the GPU-only ones, on the
example repository. It must become ready, and the restricted-protocol flags must really restrict:
model-repository calls without the admin header are refused, with it they succeed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import helm_python
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server

CHART = Path(__file__).resolve().parents[2] / "charts" / "triton-deploy"
RESTRICTED_VALUE = "test-admin-value-not-a-secret"
# Chosen by the local runtime (free ports, the example repository).
LOCAL_FLAGS = {"--model-repository", "--http-port", "--grpc-port", "--metrics-port"}
# Meaningful only with a GPU (CUDA memory pools, device limits).
GPU_ONLY_FLAGS = {
    "--cuda-memory-pool-byte-size",
    "--cuda-virtual-address-size",
    "--min-supported-compute-capability",
    "--model-load-gpu-limit",
    "--enable-peer-access",
}


def _rendered_command_lines() -> dict[tuple[str, ...], list[str]]:
    """Unique tritonserver arg lists (after substitution and stripping) -> scenario/color ids."""
    chart = helm_python.Chart.load(CHART)
    found: dict[tuple[str, ...], list[str]] = {}
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        scenario = path.name.removesuffix("-values.yaml")
        rendered = chart.render(yaml.safe_load(path.read_text()), name="prod", namespace="ml")
        docs = [
            d for d in yaml.safe_load_all(rendered[f"{chart.name}/templates/deployment.yaml"]) if d
        ]
        for deploy in docs:
            triton = next(
                c
                for c in deploy["spec"]["template"]["spec"]["containers"]
                if c["name"] == "tritonserver"
            )
            assert triton["command"] == ["tritonserver"]
            args = tuple(_local_args(triton["args"], triton.get("env", [])))
            color = deploy["spec"]["template"]["metadata"]["labels"]["color"]
            found.setdefault(args, []).append(f"{scenario}/{color}")
    return found


def _local_args(args: list[str], env: list[dict[str, Any]]) -> list[str]:
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


COMMAND_LINES = _rendered_command_lines()


def _restriction(args: tuple[str, ...], flag: str) -> tuple[list[str], str] | None:
    """(protocols, header key) of a restricted-protocol flag, e.g. --http-restricted-api."""
    for arg in args:
        name, _, value = arg.partition("=")
        if name == flag:
            protocols, _, setting = value.partition(":")
            key, _, _ = setting.partition("=")
            return protocols.split(","), key
    return None


def test_every_scenario_yields_a_command_line() -> None:
    ids = [i for group in COMMAND_LINES.values() for i in group]
    assert {i.split("/")[0] for i in ids} >= {
        "gpu",
        "cpu-staging",
        "s3",
        "pvc",
        "tensorrt-on-node",
        "blue-green-both-up",
    }


@pytest.mark.parametrize(
    "args", list(COMMAND_LINES), ids=[",".join(ids) for ids in COMMAND_LINES.values()]
)
def test_rendered_flags_start_a_real_tritonserver(
    model_repository: Path, args: tuple[str, ...]
) -> None:
    with TritonServer(model_repository, extra_args=list(args)) as server:
        # TritonServer returns only once /v2/health/ready answers 200.
        assert server.is_ready()
        log = "\n".join(server.log)
        assert "Unrecognized" not in log and "unknown option" not in log.lower(), log[-2000:]

        http = _restriction(args, "--http-restricted-api")
        if http is not None:
            protocols, key = http
            assert "model-repository" in protocols
            assert _repository_index(server.http_url, {}) == 403
            assert _repository_index(server.http_url, {key: "wrong"}) == 403
            assert _repository_index(server.http_url, {key: RESTRICTED_VALUE}) == 200
            # Inference and health stay open to ordinary clients.
            assert _get(f"{server.http_url}/v2/health/live") == 200

        grpc = _restriction(args, "--grpc-restricted-protocol")
        if grpc is not None:
            _, key = grpc
            client = grpcclient.InferenceServerClient(server.grpc_url)
            try:
                assert client.is_server_ready()
                with pytest.raises(InferenceServerException, match="restricted"):
                    client.get_model_repository_index()
                # gRPC metadata carries the key with Triton's prefix.
                index = client.get_model_repository_index(
                    headers={f"triton-grpc-protocol-{key}": RESTRICTED_VALUE}
                )
                assert index.models
            finally:
                client.close()

        if "--allow-metrics=true" in args:
            with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
                assert b"nv_inference_request_success" in reply.read()
        if "--log-format=ISO8601" in args:
            assert any(line[:4].isdigit() and "T" in line[:11] for line in server.log), log[:2000]


def _repository_index(base_url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"{base_url}/v2/repository/index", data=b"{}", headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return int(reply.status)
