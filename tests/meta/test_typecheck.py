"""mypy sees the real types across pyproject's package-dir mapping (``make lint`` runs
.ci/typecheck.py): a wrong argument to a function in ``triton_deploy.build`` or
``triton_deploy.clients`` is an error, not an ``Any`` that passes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mypy")


def lay_out_tree() -> None:
    spec = importlib.util.spec_from_file_location("typecheck", ROOT / ".ci" / "typecheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.lay_out(module.package_dirs())


def mypy(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cross_package_calls_are_type_checked() -> None:
    lay_out_tree()
    done = mypy(
        "from triton_deploy.build.spec import load_spec\n"
        "from triton_deploy.clients import InferenceClient\n"
        "load_spec(123)\n"
        "InferenceClient('localhost:8001', timeout='soon')\n"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert '<string>:3: error: Argument 1 to "load_spec" has incompatible type "int"' in done.stdout
    assert '<string>:4: error: Argument "timeout" to "InferenceClient"' in done.stdout


def test_the_public_api_passes_the_strict_checks() -> None:
    lay_out_tree()
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--show-error-codes", "-p", "triton_deploy.clients"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
