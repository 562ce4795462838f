"""The documentation site builds strictly, and its generated references cover everything.

References are generated from the code at build time (docs/scripts/reference.py), so they
cannot drift; these tests make sure they stay complete: every ``tdeploy`` command is in the CLI
reference, every chart value carries a ``# --`` description, and ``mkdocs build --strict``
(broken links, missing pages, unresolved API references fail) passes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "docs/scripts/reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _command_paths(command: typer.core.TyperGroup, prefix: str = "tdeploy") -> list[str]:
    paths = []
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "hidden", False):
            continue
        paths.append(f"{prefix} {name}")
        paths.extend(_command_paths(sub, f"{prefix} {name}"))
    return paths


def test_cli_reference_has_every_command_and_option() -> None:
    from triton_deploy.cli import _register_sub_commands, app

    _register_sub_commands()
    command = typer.main.get_command(app)
    text = _reference().cli_reference()
    for path in _command_paths(command):
        assert f"## `{path}`" in text, f"{path} is missing from the CLI reference"
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    for param in serve.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert re.search(rf"[`, ]{re.escape(opt)}[`, <]", text), (
                    f"tdeploy serve {opt} is missing"
                )


def test_every_chart_value_is_documented() -> None:
    reference = _reference()
    values = reference.chart_values()
    undocumented = [v.key for v in values if not v.description]
    assert not undocumented, f"values.yaml keys without a '# --' comment: {undocumented}"
    data = yaml.safe_load((ROOT / "charts/triton-deploy/values.yaml").read_text())
    keys = {v.key for v in values}
    for top in data:
        assert top in keys or any(k.startswith(f"{top}.") for k in keys), top
    page = reference.values_reference()
    assert '| `activeColor` | string | `"blue"` |' in page


def test_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: the [docs] extra is part of `make install`")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    site = tmp_path / "site"
    assert "InferenceClient" in (site / "reference/client-api/index.html").read_text()
    assert "tdeploy serve" in (site / "reference/cli/index.html").read_text()
    assert "activeColor" in (site / "reference/chart-values/index.html").read_text()
