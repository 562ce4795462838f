"""The client library's overhead benchmark (`tdeploy bench client-overhead`) runs end to end."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server


def test_client_overhead_runs(triton_server: TritonServer) -> None:
    model = "digits"  # an ensemble of the example repository: the client's own use case
    url = triton_server.grpc_url
    result = CliRunner().invoke(
        app, ["bench", "client-overhead", "--url", url, "--overhead", "--model", model]
    )
    assert result.exit_code == 0, result.output
    assert "client-side cost per call" in result.output
    paired = CliRunner().invoke(
        app,
        ["bench", "client-overhead", "--url", url, "--model", model, "--rounds", "1",
         "--duration", "0.5", "--json"],
    )  # fmt: skip
    assert paired.exit_code == 0, paired.output
    assert "tritonclient" in paired.output and "triton_deploy" in paired.output
