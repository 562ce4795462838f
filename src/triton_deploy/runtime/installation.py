"""Where the local Triton Inference Server comes from: the nvidia-pytriton wheel.

The wheel ships a real tritonserver 2.51 binary, its shared libraries and the Python backend,
but no native onnxruntime / fil / tensorrt backends. ``prepare_backend_directory`` assembles a
backend directory of our own: the wheel's Python backend plus the stub for this interpreter,
and the project's Python-based ``onnxruntime`` and ``fil`` backends, which honour the native
backends' contracts so the same model repository runs here and on the NGC container.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from triton_deploy.errors import RuntimeEnvironmentError

__all__ = ["PYTHON_BASED_BACKENDS", "TritonInstallation", "prepare_backend_directory"]

#: Backends that run here as Python-based backends (``<backend-dir>/<name>/model.py``).
PYTHON_BASED_BACKENDS = ("onnxruntime", "fil")
#: Pure-numpy helper modules copied beside each Python-based backend's model.py.
BACKEND_HELPERS = ("tdeploy_batching.py", "tdeploy_xgboost.py")


@dataclass(frozen=True)
class TritonInstallation:
    """Paths inside an installed nvidia-pytriton wheel."""

    binary: Path
    libraries: Path
    backends: Path
    stub: Path

    @classmethod
    def locate(cls) -> TritonInstallation:
        try:
            import pytriton
        except ImportError as exc:
            raise RuntimeEnvironmentError(
                "the local Triton runtime needs nvidia-pytriton: "
                "pip install 'triton-deploy[serve]' (or run `make install`)"
            ) from exc
        root = Path(pytriton.__file__).parent / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        found = cls(
            binary=root / "bin" / "tritonserver",
            libraries=root.parent.parent / "nvidia_pytriton.libs",
            backends=root / "backends",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        )
        for path in (found.binary, found.libraries, found.backends / "python", found.stub):
            if not path.exists():
                raise RuntimeEnvironmentError(
                    f"nvidia-pytriton is installed but {path} is missing "
                    f"(Python {version} may not be supported by this wheel)"
                )
        return found

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for the server process.

        The Python backend stub embeds the system libpython and finds packages (numpy,
        onnxruntime, xgboost) through the ``python3`` on PATH, so the running interpreter's
        ``bin/`` must come first.
        """
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.libraries), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PATH"] = os.pathsep.join(
            p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p
        )
        return env


def prepare_backend_directory(destination: Path, installation: TritonInstallation) -> Path:
    """Assemble a backend directory in ``destination`` (left untouched: the wheel's own folder)."""
    destination.mkdir(parents=True, exist_ok=True)
    python_dir = destination / "python"
    if not (python_dir / "libtriton_python.so").exists():
        shutil.copytree(
            installation.backends / "python",
            python_dir,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy2(installation.stub, python_dir / "triton_python_backend_stub")
    package = resources.files("triton_deploy.runtime.backends")
    for name in PYTHON_BASED_BACKENDS:
        target = destination / name
        target.mkdir(exist_ok=True)
        source = package.joinpath(f"{name}_backend.py")
        (target / "model.py").write_bytes(source.read_bytes())
        for helper in BACKEND_HELPERS:
            (target / helper).write_bytes(package.joinpath(helper).read_bytes())
    return destination
