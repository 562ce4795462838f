"""Importing the load-test package (or the CLI command) must not import locust: locust
monkey-patches the whole interpreter for gevent on import."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "triton_deploy.loadtests",
        "triton_deploy.loadtests.run",
        "triton_deploy.loadtests.plot",
        "triton_deploy.cli_loadtest",
    ],
)
def test_no_locust_no_gevent_no_torch(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in ('locust', 'gevent', 'torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_public_names_exist_once() -> None:
    import triton_deploy.loadtests as loadtests

    assert len(set(loadtests.__all__)) == len(loadtests.__all__)
    for name in loadtests.__all__:
        assert hasattr(loadtests, name), name
