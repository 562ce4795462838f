"""Reference pages generated from the code, so they cannot drift from it.

- ``cli_reference()``: every ``tdeploy`` command, argument and option, from the typer app itself
  (typer's own Markdown generator over the click command tree).
- ``values_reference(values_yaml)``: every chart value documented with a ``# --`` comment
  directly above it (the helm-docs convention, as in argo-helm), with its type and default, read
  from ``values.yaml``. A value without such a comment is listed too, marked undocumented, so a
  test can insist on none.

Run by mkdocs-gen-files at ``mkdocs build`` (``docs/scripts/gen_pages.py``); importable by tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ChartValue", "chart_values", "cli_reference", "values_reference"]

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "charts" / "triton-deploy" / "values.yaml"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/\"']+):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")
_COMMENT = re.compile(r"^ *#(?P<text>.*)$")


def cli_reference() -> str:
    """The whole ``tdeploy`` command tree as Markdown."""
    import typer
    from typer.cli import get_docs_for_click

    from triton_deploy.cli import _register_sub_commands, app

    _register_sub_commands()
    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="tdeploy")
    text = get_docs_for_click(obj=command, ctx=ctx, name="tdeploy", title="CLI reference")
    intro = (
        "\n\nGenerated from the typer app at docs build time (`docs/scripts/reference.py`): "
        "every command, argument, option and environment variable that `tdeploy --help` shows.\n"
    )
    first_line, _, rest = text.partition("\n")
    return first_line + intro + rest


@dataclass(frozen=True)
class ChartValue:
    """One leaf (or documented block) of values.yaml."""

    key: str
    type: str
    default: Any
    description: str


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null"


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data[part]
    return data


def chart_values(values_yaml: Path = VALUES) -> list[ChartValue]:
    """Every key of values.yaml in file order: documented ones with their ``# --`` text (which
    may continue on following ``#`` lines), and leaves without one marked undocumented."""
    data = yaml.safe_load(values_yaml.read_text())
    lines = values_yaml.read_text().splitlines()
    stack: list[tuple[int, str]] = []  # (indent, key) of the open blocks
    pending: list[str] | None = None
    out: list[ChartValue] = []
    documented: set[str] = set()
    for line in lines:
        doc = _DOC.match(line)
        if doc:
            pending = [doc.group("text").strip()]
            continue
        comment = _COMMENT.match(line)
        if comment:
            if pending is not None and not line.lstrip().startswith("# -"):
                text = comment.group("text").strip()
                # a commented-out example (`# - name: ngc`, `# key: value`) ends the description
                if text and not re.match(r"^[-\w./\"']+:\s|^- ", text):
                    pending.append(text)
                else:
                    pending = [*pending]  # keep what we have; examples are not description
            continue
        key = _KEY.match(line)
        if not key:
            if line.strip() and not line.lstrip().startswith("-"):
                pending = None
            continue
        indent = len(key.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        name = key.group("key").strip("\"'")
        path = [k for _, k in stack] + [name]
        try:
            value = _lookup(data, path)
        except (KeyError, TypeError):  # a key inside a list item: part of its parent's default
            pending = None
            continue
        is_block = isinstance(value, dict) and bool(value)
        dotted = ".".join(path)
        if pending is not None:
            out.append(ChartValue(dotted, _type(value), value, " ".join(pending)))
            documented.add(dotted)
        elif not is_block and not any(
            ".".join(path[:i]) in documented for i in range(1, len(path))
        ):
            # a leaf of a documented block is part of that block's default, not a value of its own
            out.append(ChartValue(dotted, _type(value), value, ""))
        pending = None
        if is_block:
            stack.append((indent, name))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def values_reference(values_yaml: Path = VALUES) -> str:
    """The chart's values as one Markdown table (key, type, default, description)."""
    rows = [
        "# Chart values reference",
        "",
        "Generated at docs build time from `charts/triton-deploy/values.yaml` (each value's "
        "`# --` comment, its type and its default; `docs/scripts/reference.py`). "
        "`values.schema.json` checks every one at `helm install/upgrade`.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    for value in chart_values(values_yaml):
        default = json.dumps(value.default, default=str)
        if len(default) > 80:
            default = default[:77] + "..."
        rows.append(
            f"| `{value.key}` | {value.type} | `{_cell(default)}` | "
            f"{_cell(value.description) or '*(undocumented)*'} |"
        )
    return "\n".join(rows) + "\n"
