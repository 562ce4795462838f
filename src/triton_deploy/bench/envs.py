"""Virtual environments of the comparison tools, each its own, created by the project itself.

    python -m triton_deploy.bench.envs [perf_analyzer mlserver bentoml model_analyzer]
    make bench-envs                                                       # all of them

- ``perf_analyzer``: NVIDIA's load generator from the ``tritonclient==2.51.0`` wheel (newer
  wheels' binaries need glibc 2.38; Debian 12 has 2.36). It needs Debian's ``libb64-0d`` and the
  ``nvidia-cuda-runtime-cu12`` wheel's lib folder on ``LD_LIBRARY_PATH`` (no GPU is used).
- ``mlserver``: Seldon's MLServer 1.7.1 (KServe's Python runtime) with its XGBoost and LightGBM
  runtimes; 1.7.1 needs ``uvloop==0.21.0``. The runtimes are installed without their
  dependencies so that ``xgboost-cpu`` stands in for the CUDA build of xgboost.
- ``bentoml``: BentoML with onnxruntime and xgboost-cpu.
- ``model_analyzer``: NVIDIA's Triton Model Analyzer (``tdeploy bench analyzer``).

They live in ``$TDEPLOY_BENCH_ENVS`` or else ``.venv-bench/`` beside the running virtual
environment (git-ignored), one folder per tool, each with a stamp of what was installed, so a
changed pin re-creates it. ``make test`` never needs them: the bench skips a tool whose
environment is missing and says how to create it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from triton_deploy.errors import RuntimeEnvironmentError

__all__ = ["ENVIRONMENTS", "BenchEnvironment", "environment", "environments_root", "main"]


@dataclass(frozen=True)
class BenchEnvironment:
    name: str
    # pip install steps, in order; each is one pip call's arguments
    steps: tuple[tuple[str, ...], ...]
    executable: str  # the program the bench runs from the env's bin/
    debian: tuple[str, ...] = ()
    library_globs: tuple[str, ...] = field(default=())  # site-packages dirs for LD_LIBRARY_PATH

    @property
    def path(self) -> Path:
        return environments_root() / self.name

    @property
    def binary(self) -> Path:
        return self.path / "bin" / self.executable

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def _fingerprint(self) -> str:
        return hashlib.sha256(json.dumps([self.steps, self.debian]).encode()).hexdigest()[:16]

    @property
    def _stamp(self) -> Path:
        return self.path / ".tdeploy-installed"

    def ready(self) -> bool:
        return (
            self.binary.exists()
            and self._stamp.exists()
            and self._stamp.read_text().strip() == self._fingerprint()
            and all(_debian_installed(p) for p in self.debian)
        )

    def missing_reason(self) -> str:
        return (
            f"{self.name} is not set up: run `make bench-envs` "
            f"(or `python -m triton_deploy.bench.envs {self.name}`)"
        )

    def environment(self) -> dict[str, str]:
        """Process environment to run the tool with."""
        env = dict(os.environ)
        libs = [str(p) for g in self.library_globs for p in sorted(self.path.glob(g))]
        if libs:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                [*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])]
            )
        env["PATH"] = os.pathsep.join([str(self.path / "bin"), env.get("PATH", "")])
        env.pop("VIRTUAL_ENV", None)
        return env

    def create(self, *, log: object = print) -> Path:
        """Create (or re-create) the environment; idempotent when already up to date."""
        if self.ready():
            return self.path
        _install_debian(self.debian)
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        log(f"creating {self.path} ({self.name})")  # type: ignore[operator]
        subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
        pip = [str(self.python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for step in self.steps:
            log(f"  pip install {' '.join(step)}")  # type: ignore[operator]
            subprocess.run([*pip, *step], check=True)
        if not self.binary.exists():
            raise RuntimeEnvironmentError(f"{self.name}: {self.binary} missing after install")
        self._stamp.write_text(self._fingerprint())
        return self.path


def environments_root() -> Path:
    """``$TDEPLOY_BENCH_ENVS``, else ``.venv-bench`` beside the running virtual environment."""
    configured = os.environ.get("TDEPLOY_BENCH_ENVS")
    return Path(configured) if configured else Path(sys.prefix).resolve().parent / ".venv-bench"


def _debian_installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return True  # not a Debian system: the user provides the library
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return "install ok installed" in result.stdout


def _install_debian(packages: tuple[str, ...]) -> None:
    need = [p for p in packages if not _debian_installed(p)]
    if not need:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    try:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeEnvironmentError(
            f"could not install Debian package(s) {', '.join(need)}: {exc}; install them by hand"
        ) from exc


ENVIRONMENTS: dict[str, BenchEnvironment] = {
    env.name: env
    for env in (
        BenchEnvironment(
            "perf_analyzer",
            steps=(("tritonclient==2.51.0", "nvidia-cuda-runtime-cu12==12.9.79"),),
            executable="perf_analyzer",
            debian=("libb64-0d",),
            library_globs=("lib/python3*/site-packages/nvidia/cuda_runtime/lib",),
        ),
        BenchEnvironment(
            "mlserver",
            steps=(
                (
                    "mlserver==1.7.1",
                    "uvloop==0.21.0",
                    "xgboost-cpu==3.2.0",
                    "lightgbm==4.7.0",
                    "scikit-learn==1.9.1",
                ),
                ("--no-deps", "mlserver-xgboost==1.7.1", "mlserver-lightgbm==1.7.1"),
            ),
            executable="mlserver",
        ),
        BenchEnvironment(
            "bentoml",
            steps=(
                (
                    "bentoml==1.4.40",
                    "onnxruntime==1.32.0",
                    "xgboost-cpu==3.2.0",
                    "lightgbm==4.7.0",
                ),
            ),
            executable="bentoml",
        ),
        # NVIDIA's Model Analyzer, for `tdeploy bench analyzer` (1.45, the 24.10 release that
        # matches the local server, is not on PyPI; 1.44 is the closest). Its own perf_analyzer
        # needs glibc 2.38: it is pointed at the 2.51 one above (--perf-analyzer-path).
        BenchEnvironment(
            "model_analyzer",
            steps=(("triton-model-analyzer==1.44.0",),),
            executable="model-analyzer",
        ),
    )
}


def environment(name: str) -> BenchEnvironment:
    return ENVIRONMENTS[name]


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(ENVIRONMENTS)
    unknown = [n for n in names if n not in ENVIRONMENTS]
    if unknown:
        print(f"unknown environment(s) {unknown}; known: {list(ENVIRONMENTS)}", file=sys.stderr)
        return 2
    for name in names:
        env = ENVIRONMENTS[name]
        print(f"{name}: {'up to date' if env.ready() else 'installing'} ({env.path})")
        env.create()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
