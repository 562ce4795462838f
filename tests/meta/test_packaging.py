"""Wheels build from the repository root, although its top-level ``build/`` folder (the package
``triton_deploy.build``) shadows PyPA's ``build`` and is setuptools' default scratch folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_clone(tmp_path: Path) -> Path:
    """The committed files (and uncommitted edits to them), as CI's clean clone has them."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to list the project's files")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    clone = tmp_path / "clone"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    return clone


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def wheel_names(dist: Path) -> set[str]:
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def check_wheel(names: set[str]) -> None:
    for expected in (
        "triton_deploy/__init__.py",
        "triton_deploy/build/__init__.py",
        "triton_deploy/build/spec.py",
        "triton_deploy/build/examples/ctr/__init__.py",
        "triton_deploy/clients/__init__.py",
        "triton_deploy/clients/py.typed",
        "triton_deploy/loadtests/slo/local.yaml",
    ):
        assert expected in names, expected
    assert not any(name.startswith("build/") for name in names)  # no stray top-level package


def test_python_m_build_from_the_root(clean_clone: Path, tmp_path: Path) -> None:
    before = files_under(clean_clone / "build")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=clean_clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_wheel(wheel_names(tmp_path))
    assert files_under(clean_clone / "build") == before  # nothing written into build/


def test_pip_wheel_from_the_root(clean_clone: Path, tmp_path: Path) -> None:
    before = files_under(clean_clone / "build")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=clean_clone,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    check_wheel(wheel_names(tmp_path))
    assert files_under(clean_clone / "build") == before


def test_python_m_triton_deploy_build_is_tdeploy_build() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "triton_deploy.build", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "--spec" in done.stdout and "--out" in done.stdout
