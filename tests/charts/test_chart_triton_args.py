"""The chart's tritonserver command line is a real one.

For every ci/ scenario and color, the args of the rendered Deployment are parsed and the local
tritonserver 2.51 (the release of the chart's default 24.10 image) is started with the same flags,
minus the repository/port flags (the local runtime picks its own) and the GPU-only ones, on the
example repository. It must become ready, and what the flags promise must hold on the real server:
- the restricted-protocol flags really restrict: model-repository calls without the admin header
  are refused, with it they succeed;
- with HTTP off (the default) no HTTP listener exists, metrics are still served, and the gRPC
  health check the kubelet probes and `helm test` use answers SERVING: `helm test`'s own script
  is run here, with the local sh and curl;
- in the `health` HTTP mode, the nested-JSON request that crashes Triton 2.51's HTTP parser is
  refused before it is parsed, and the server stays up.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import helm_python
import psutil
import pytest
import tritonclient.grpc as grpcclient
import yaml
from charttools import (
    CHART,
    RESTRICTED_VALUE,
    grpc_ready_server_class,
    local_server_args,
    merge,
    scenario_values,
)
from tritonclient.utils import InferenceServerException

from triton_deploy.runtime.server import free_port

pytestmark = pytest.mark.server

TritonServer = grpc_ready_server_class()


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
            args = tuple(local_server_args(triton["args"], triton.get("env", [])))
            color = deploy["spec"]["template"]["metadata"]["labels"]["color"]
            found.setdefault(args, []).append(f"{scenario}/{color}")
    return found


COMMAND_LINES = _rendered_command_lines()


def _helm_test_script(values: dict[str, Any]) -> str:
    """The shell script of the chart's `helm test` pod, as rendered."""
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values, name="prod", namespace="ml")
    (pod,) = [
        d
        for d in yaml.safe_load_all(rendered["triton-deploy/templates/tests/test-health.yaml"])
        if d
    ]
    command = pod["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"]
    return str(command[2])


def _run_helm_test(script: str, *addresses: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("curl"), "curl missing: run `bash .ci/system-deps`"
    return subprocess.run(
        ["sh", "-c", script, "grpc-health", *addresses], capture_output=True, text=True, timeout=120
    )


def _server_args(values: dict[str, Any], color: str = "blue") -> list[str]:
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values, name="prod", namespace="ml")
    for deploy in yaml.safe_load_all(rendered["triton-deploy/templates/deployment.yaml"]):
        if deploy and deploy["metadata"]["name"].endswith(f"-{color}"):
            triton = deploy["spec"]["template"]["spec"]["containers"][0]
            return local_server_args(triton["args"], triton.get("env", []))
    raise AssertionError(f"no {color} Deployment")


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
        # The server returns only once grpc.health.v1.Health/Check answers SERVING.
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
            # Health stays open to ordinary clients.
            assert _get(f"{server.http_url}/v2/health/live") == 200
        if "--allow-http=false" in args:
            # no listener: nothing to parse JSON. Asked of the server process itself: another
            # process may listen on the port it was handed and never bound (parallel workers).
            assert server.pid is not None
            listening = {
                c.laddr.port
                for c in psutil.Process(server.pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            }
            assert server.grpc_port in listening and server.http_port not in listening, listening

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
        # `helm test`'s own script (sh + curl over HTTP/2) against the real server.
        result = _run_helm_test(HELM_TEST_SCRIPT, server.grpc_url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SERVING: {server.grpc_url}" in result.stdout
        if "--log-format=ISO8601" in args:
            assert any(line[:4].isdigit() and "T" in line[:11] for line in server.log), log[:2000]


HELM_TEST_SCRIPT = _helm_test_script(scenario_values("blue-green-both-up"))


def test_helm_test_script_fails_when_nothing_serves() -> None:
    values = merge(scenario_values("pvc"), {"tests": {"attempts": 2, "retryDelaySeconds": 0}})
    script = _helm_test_script(values)
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = _run_helm_test(script, address)
    assert result.returncode == 1
    assert f"not SERVING after 2 attempts: {address}" in result.stderr


def test_http_health_mode_refuses_the_nested_json_crash_and_keeps_serving(
    model_repository: Path,
) -> None:
    """Triton 2.51 dies with SIGSEGV parsing ~200,000-deep nested JSON over HTTP (rapidjson
    recursion; fixed in Triton 2.69.0 / NGC 26.05 by triton-inference-server/common#156). In
    the chart's `health` mode every HTTP API but health needs the admin header, which Triton
    checks before it reads the JSON."""
    values = merge(scenario_values("pvc"), {"triton": {"http": {"mode": "health"}}})
    args = _server_args(values)
    assert not [a for a in args if a.startswith("--allow-http")]
    with TritonServer(model_repository, extra_args=args) as server:
        # Triton opens its HTTP port just after gRPC answers SERVING.
        deadline = time.monotonic() + 30
        while _status(f"{server.http_url}/v2/health/ready", {}) != 200:
            assert time.monotonic() < deadline, "HTTP health never answered"
            time.sleep(0.2)
        body = b'{"inputs":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
        request = urllib.request.Request(
            f"{server.http_url}/v2/models/any/infer", data=body, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        assert b"restricted" in refused.value.read()
        time.sleep(0.5)
        assert server.is_ready()  # still up: 2.51 with full HTTP dies here with SIGSEGV
        assert _get(f"{server.http_url}/v2/health/live") == 200
        # Over HTTP the rest is admin-only (metadata too); gRPC serves ordinary clients.
        assert _status(f"{server.http_url}/v2", {}) == 403
        assert _status(f"{server.http_url}/v2", {"x-admin-token": RESTRICTED_VALUE}) == 200
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            assert client.is_server_ready() and client.get_server_metadata().version == "2.51.0"
        finally:
            client.close()


def _status(url: str, headers: dict[str, str]) -> int:
    """HTTP status of a GET; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except urllib.error.URLError:
        return 0


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
