"""The admin API is closed by default: unloading (and every other state-changing API) needs the
run's key, over gRPC and over HTTP; serve's own drain and `tdeploy drain` have it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from servingtools import python_model
from tritonclient.utils import InferenceServerException
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.runtime.admin import ADMIN_PROTOCOLS, RunState, grpc_admin_headers
from triton_deploy.runtime.server import TritonServer, free_port

pytestmark = pytest.mark.server
TDEPLOY = Path(sys.executable).parent / "tdeploy"


@pytest.fixture
def echo_repository(tmp_path: Path) -> Path:
    python_model(tmp_path / "repo", "echo")
    python_model(tmp_path / "repo", "other")
    return tmp_path / "repo"


def _states(server: TritonServer) -> dict[str, str]:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        index = client.get_model_repository_index(headers=server.admin_grpc_headers, as_json=True)
    return {m["name"]: m.get("state", "") for m in index["models"]}


def _wait_state(server: TritonServer, model: str, state: str) -> str:
    """The model's state once it is ``state`` (an unload completes in the background)."""
    deadline = time.monotonic() + 60
    while (now := _states(server).get(model)) != state and time.monotonic() < deadline:
        time.sleep(0.05)
    return str(now)


def _post(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_unload_without_the_key_is_refused_with_it_allowed_grpc_and_http(
    echo_repository: Path,
) -> None:
    with TritonServer(echo_repository) as server:
        assert server.admin_key and len(server.admin_key) == 64
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            for call in (
                lambda: client.unload_model("echo"),
                lambda: client.load_model("echo"),
                lambda: client.get_model_repository_index(),
                lambda: client.update_trace_settings(settings={"trace_level": ["TENSORS"]}),
                lambda: client.update_log_settings(settings={"log_verbose_level": 1}),
                lambda: client.unregister_system_shared_memory(),
            ):
                with pytest.raises(InferenceServerException, match="restricted"):
                    call()
            assert _states(server)["echo"] == "READY"
            # what changes nothing stays open
            assert client.is_model_ready("echo")
            client.get_inference_statistics("echo")
            client.unload_model("echo", headers=server.admin_grpc_headers)
        assert _wait_state(server, "echo", "UNAVAILABLE") == "UNAVAILABLE"

        http = server.http_url
        assert _post(f"{http}/v2/repository/models/other/unload") == 403
        assert _post(f"{http}/v2/logging") == 403
        assert _states(server)["other"] == "READY"
        assert _post(f"{http}/v2/repository/models/other/unload", server.admin_http_headers) == 200
        assert _wait_state(server, "other", "UNAVAILABLE") == "UNAVAILABLE"
        assert _post(f"{http}/v2/repository/models/echo/load", {"triton-admin-key": "x"}) == 403
        assert _post(f"{http}/v2/repository/models/echo/load", server.admin_http_headers) == 200
        # the drain on stop uses the key: every model is unloaded before SIGTERM
    assert server.last_drain is not None and server.last_drain.complete, server.last_drain
    assert set(server.last_drain.unloaded) == {"echo"}


def test_every_admin_protocol_is_restricted_on_both_protocols(echo_repository: Path) -> None:
    server = TritonServer(echo_repository, admin_key="k" * 16)
    args = server.command(
        installation=type("I", (), {"binary": "tritonserver"})(),  # type: ignore[arg-type]
        backend_directory=Path("/b"),
        repository=echo_repository,
    )
    for flag in ("--grpc-restricted-protocol", "--http-restricted-api"):
        (value,) = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")][:1]
        protocols, header = value.split(":", 1)
        assert protocols.split(",") == list(ADMIN_PROTOCOLS)
        assert header == "triton-admin-key=" + "k" * 16
    open_server = TritonServer(echo_repository, restrict_admin=False)
    assert open_server.admin_key is None and open_server.admin_grpc_headers == {}


def test_serve_writes_the_key_for_tdeploy_drain_and_drains_with_it(
    echo_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("TDEPLOY_STATE_DIR", str(state_dir))
    monkeypatch.delenv("TDEPLOY_ADMIN_KEY", raising=False)
    env = os.environ | {"TDEPLOY_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    env.pop("TDEPLOY_ADMIN_KEY", None)
    port = free_port()
    serve = subprocess.Popen(
        [
            str(TDEPLOY),
            "serve",
            "--repository",
            str(echo_repository),
            "--grpc-port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--no-log-server",
            "--max-inflight",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert serve.stdout is not None
        banner = []
        for line in serve.stdout:
            banner.append(line)
            if "  stop:" in line:
                break
        path = RunState.path_for(port)
        assert str(path) in "".join(banner).replace("\n", ""), banner
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        state = json.loads(path.read_text())
        url = f"127.0.0.1:{port}"
        with grpcclient.InferenceServerClient(url) as client:
            with pytest.raises(InferenceServerException, match="restricted"):
                client.unload_model("echo")
            with pytest.raises(InferenceServerException, match="restricted"):
                client.unload_model("echo", headers=grpc_admin_headers("wrong"))

        runner = CliRunner()
        # no key anywhere (another state folder): refused, and the message says so
        other = {"TDEPLOY_STATE_DIR": str(tmp_path / "elsewhere")}
        refused = runner.invoke(app, ["drain", "--url", url, "--timeout", "10"], env=other)
        assert refused.exit_code == 1 and "restricted" in refused.output
        # the run-state file of the serve at --url
        drained = runner.invoke(
            app,
            ["drain", "--url", url, "--timeout", "30"],
            env={"TDEPLOY_STATE_DIR": str(state_dir)},
        )
        assert drained.exit_code == 0, drained.output
        assert "drained 2 models" in drained.output
        with grpcclient.InferenceServerClient(url) as client:
            client.load_model("echo", headers=grpc_admin_headers(state["admin_key"]))
        # --admin-key works as well
        again = runner.invoke(
            app,
            ["drain", "--url", url, "--admin-key", state["admin_key"]],
            env={"TDEPLOY_STATE_DIR": str(tmp_path / "elsewhere")},
        )
        assert again.exit_code == 0, again.output
    finally:
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, rest
    assert not RunState.path_for(port).exists()  # removed on exit


def test_a_given_admin_key_is_used(echo_repository: Path) -> None:
    with TritonServer(echo_repository, admin_key="my-own-admin-key") as server:
        with grpcclient.InferenceServerClient(server.grpc_url) as client:
            client.unload_model("echo", headers=grpc_admin_headers("my-own-admin-key"))
        assert _wait_state(server, "echo", "UNAVAILABLE") == "UNAVAILABLE"
