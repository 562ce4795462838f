"""runtime/installation.py: the Triton binary inside the nvidia-pytriton wheel, the server's
environment, and the backend directory the project assembles."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from triton_deploy.errors import RuntimeEnvironmentError
from triton_deploy.runtime.installation import TritonInstallation, prepare_backend_directory

pytest.importorskip("pytriton")


def test_the_wheel_holds_a_tritonserver_for_this_python() -> None:
    found = TritonInstallation.locate()
    assert found.binary.name == "tritonserver" and os.access(found.binary, os.X_OK)
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in str(found.stub)
    assert (found.backends / "python" / "libtriton_python.so").is_file()


def test_the_servers_environment_finds_its_libraries_and_this_python() -> None:
    found = TritonInstallation.locate()
    env = found.environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"})
    assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [str(found.libraries), "/opt/lib"]
    # the Python backend stub finds numpy etc. through the first python3 on PATH
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_backend_directory_has_python_and_the_python_based_backends(tmp_path: Path) -> None:
    found = TritonInstallation.locate()
    backends = prepare_backend_directory(tmp_path / "backends", found)
    assert (backends / "python" / "triton_python_backend_stub").is_file()
    for name in ("onnxruntime", "fil"):
        assert (backends / name / "model.py").is_file()
        assert (backends / name / "tdeploy_batching.py").is_file()
    # the wheel's own folder is left as it was
    assert not (found.backends / "python" / "triton_python_backend_stub").exists()
    prepare_backend_directory(backends, found)  # again: idempotent


def test_a_missing_file_in_the_wheel_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "version_info", SimpleNamespace(major=3, minor=99))
    with pytest.raises(RuntimeEnvironmentError, match=r"Python 3\.99 may not be supported"):
        TritonInstallation.locate()
