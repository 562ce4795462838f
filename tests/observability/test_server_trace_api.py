"""Triton's trace API is admin-only with the chart's defaults: an ordinary caller cannot turn
TENSORS tracing on (request data to disk) or off (a gap in the inference log)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from chartargs import render, triton_container
from tritonclient.utils import InferenceServerException

from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server

ADMIN_VALUE = "test-admin-value-not-a-secret"


def test_only_admins_change_trace_settings(observed_repository: Path, tmp_path: Path) -> None:
    values = {
        "triton": {"trace": {"mode": "triton", "rate": 1, "file": {"directory": str(tmp_path)}}}
    }
    container = triton_container(render(values), "blue")
    args = [
        a.replace("$(RESTRICTED_KEY_VALUE)", ADMIN_VALUE)
        for a in container["args"]
        if a.startswith(("--trace-config", "--grpc-restricted-protocol"))
    ]
    restricted = next(a for a in args if a.startswith("--grpc-restricted-protocol"))
    assert "trace" in restricted.split("=", 1)[1].split(":")[0].split(",")
    key = restricted.split(":", 1)[1].split("=")[0]
    with TritonServer(observed_repository, extra_args=args) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            with pytest.raises(InferenceServerException, match="restricted"):
                client.update_trace_settings(settings={"trace_level": ["TENSORS"]})
            with pytest.raises(InferenceServerException, match="restricted"):
                client.get_trace_settings()
            settings = client.update_trace_settings(
                settings={"trace_level": ["TIMESTAMPS", "TENSORS"]},
                headers={f"triton-grpc-protocol-{key}": ADMIN_VALUE},
                as_json=True,
            )
            assert settings["settings"]["trace_level"]["value"] == ["TIMESTAMPS", "TENSORS"]
            assert settings["settings"]["trace_file"]["value"] == [f"{tmp_path}/blue.json"]
        finally:
            client.close()
