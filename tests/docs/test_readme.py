"""The README is the front door: short, its layout true to the tree, and its tour runnable.

The tour's command blocks (each marked ``<!-- readme-test: tour -->``) are run as one bash
script in a temporary folder, in order, with the venv's tools on PATH: a user's first ten
minutes, from exporting a model to a load test against the real tritonserver. The only change
made to the text is the ports (free ones instead of 8000-8002, which CI may have in use).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from triton_deploy.runtime.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_LINES = 350
MARK = "<!-- readme-test: tour -->"


def readme_blocks(text: str, mark: str) -> list[str]:
    """The fenced ``bash`` blocks that directly follow ``mark``, in order."""
    pattern = re.compile(re.escape(mark) + r"\s*\n```bash\n(.*?)\n```", re.S)
    return pattern.findall(text)


def layout_section(text: str) -> str:
    match = re.search(r"^## Layout\n(.*?)^## ", text, re.S | re.M)
    assert match, "README has no '## Layout' section"
    return match.group(1)


def package_parts() -> list[str]:
    """Top-level packages and modules of ``triton_deploy`` as installed (pyproject's
    package-dir): ``runtime/``, ``cli_serve.py``, ``build/``, ``clients/``..."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    root = ROOT / mapping["triton_deploy"]
    parts = {f"{p.name}/" for p in root.iterdir() if (p / "__init__.py").is_file()}
    parts |= {p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    parts |= {f"{name.split('.')[1]}/" for name in mapping if name.count(".") == 1}
    return sorted(parts)


def test_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= MAX_LINES, (
        f"README.md has {lines} lines; keep it under {MAX_LINES}: move detail to docs/"
    )


def test_layout_names_every_top_level_package_and_module() -> None:
    layout = layout_section(README.read_text())
    missing = [part for part in package_parts() if part.rstrip("/") not in layout]
    assert not missing, f"README's Layout misses {missing}"


def test_readme_links_point_at_files() -> None:
    text = README.read_text()
    for target in re.findall(r"\]\(((?:docs|charts|build|clients|loadtests)/[^)#]+)", text):
        assert (ROOT / target).exists(), f"README links to a missing file: {target}"


@pytest.mark.server
def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = readme_blocks(README.read_text(), MARK)
    assert len(blocks) >= 5, "the tour lost its runnable blocks"
    script = "\n".join(blocks)
    for port in ("8001", "8000", "8002"):
        script = script.replace(port, str(free_port()))
    (tmp_path / "tour.sh").write_text("set -euo pipefail\n" + script + "\n")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    process = subprocess.Popen(
        ["bash", "tour.sh"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        else:  # the tour stops its server; make sure nothing it started outlives a failure
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    assert process.returncode == 0, f"the README tour failed:\n{output[-6000:]}"
    assert "(2, 3)" in output, output[-3000:]
    assert (tmp_path / "tour" / "model_repository" / "scorer" / "config.pbtxt").is_file()
