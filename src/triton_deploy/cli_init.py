"""``tdeploy init``: write a build spec for model files (see triton_deploy.build.init)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def init(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Model files: .onnx, .pt2, TorchScript .pt/.ts, XGBoost .json/.ubj, LightGBM .txt."
        ),
    ],
    spec: Annotated[Path, typer.Option(help="The spec file to write.")] = Path("models.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
) -> None:
    """Write a commented build spec for model files: formats, tensors and batching inferred."""
    from triton_deploy.build.init import write_spec

    entries = write_spec(files, spec, force=force)  # errors: the app prints them, exit 1
    console.print(
        f"wrote {spec} with {len(entries)} model(s): {', '.join(e.name for e in entries)}"
    )
    for entry in entries:
        if entry.note:
            console.print(f"[yellow]{entry.name}:[/] {entry.note}")
    build = "tdeploy build" if spec == Path("models.yaml") else f"tdeploy build --spec {spec}"
    console.print(f"next: {build} && tdeploy serve   (then, in another shell: tdeploy verify)")
