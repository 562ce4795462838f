"""Shared fixtures: one example repository built per test session, one real tritonserver."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from collection_guard import (  # noqa: F401  (hooks: fail when a test file is never collected)
    pytest_collect_file,
    pytest_collection_finish,
    pytest_configure,
)
from filelock import FileLock
from rich.console import Console

from triton_deploy.build.pipeline import build_repository
from triton_deploy.build.spec import load_spec
from triton_deploy.repository import MANIFEST
from triton_deploy.runtime.server import TritonServer

# Test files run longest first (measured), so that parallel workers finish together.
pytest_plugins = ["file_order"]

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "build" / "models.yaml"

# A shell starts a background job (`pytest ... &` in a script) with SIGINT ignored, and an
# ignored signal stays ignored across exec: every tdeploy the tests start would then ignore the
# Ctrl-C that the interrupt tests send, and those tests would fail for the way pytest was
# launched. A handled signal is reset to its default at exec, so pytest handling SIGINT (as it
# does when started from a terminal) gives each child Python's own KeyboardInterrupt again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def spec_path() -> Path:
    return SPEC


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example repository, built from build/models.yaml into a session folder.

    Built apart from the project's model_repository/ so that tests can compare the committed
    configs with what the spec generates.
    """
    out = tmp_path_factory.mktemp("built") / "model_repository"
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        _build_examples(out)
        return out
    # Parallel workers (pytest -n): the first one builds for all, each works on its own copy
    # (some tests rebuild or edit their repository in place).
    shared = tmp_path_factory.getbasetemp().parent / "examples-built"
    with FileLock(f"{shared}.lock"):
        if not (shared / "model_repository" / MANIFEST).is_file():
            _build_examples(shared / "model_repository")
    shutil.copytree(shared / "model_repository", out, symlinks=True)
    return out


def _build_examples(out: Path) -> None:
    report = build_repository(load_spec(SPEC), out, console=Console(stderr=True, quiet=True))
    assert not report.failed, [(r.model, r.detail) for r in report.failed]


@pytest.fixture(scope="session")
def triton_server(model_repository: Path) -> Iterator[TritonServer]:
    """A real tritonserver serving the example repository for the whole session."""
    with TritonServer(model_repository) as server:
        yield server
