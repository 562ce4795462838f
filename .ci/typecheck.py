#!/usr/bin/env python3
"""Run mypy on the package as it is installed, not as the folders lie.

pyproject.toml maps ``triton_deploy.build``, ``.clients`` and ``.loadtests`` to the top-level
folders ``build/``, ``clients/`` and ``loadtests/`` (setuptools' package-dir). mypy only knows a
module by its path, so checking those folders directly makes them the top-level modules
``build``, ``clients``, ... and every ``from triton_deploy.clients import X`` an unresolved
import (``Any``). This script lays the installed layout out as symlinks in ``.typecheck/`` (read
from package-dir, so it follows pyproject.toml) and runs ``mypy -p triton_deploy`` there
(pyproject's ``mypy_path`` is ``.typecheck``). Extra arguments go to mypy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck"


def package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in mapping.items()}


def lay_out(mapping: dict[str, Path]) -> None:
    """``.typecheck/<package path>`` -> the mapped folder; the root package's own files too."""
    shutil.rmtree(TREE, ignore_errors=True)
    roots = sorted(mapping, key=len)
    top = roots[0]
    top_dir = TREE / top.replace(".", "/")
    top_dir.mkdir(parents=True)
    for entry in mapping[top].iterdir():
        if entry.name != "__pycache__":
            (top_dir / entry.name).symlink_to(os.path.relpath(entry, top_dir))
    for package in roots[1:]:
        link = TREE / package.replace(".", "/")
        if link.exists() or link.is_symlink():
            raise SystemExit(f"{package}: mapped twice ({link} exists)")
        link.symlink_to(os.path.relpath(mapping[package], link.parent))


def main() -> int:
    mapping = package_dirs()
    lay_out(mapping)
    top = sorted(mapping, key=len)[0]
    mypy = Path(sys.executable).with_name("mypy")
    command = [str(mypy) if mypy.exists() else "mypy", "-p", top, *sys.argv[1:]]
    return subprocess.call(command, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
