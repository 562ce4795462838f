"""The ``tdeploy`` command line: thin typer wrappers over typed functions.

The project's error becomes exit code 1 with a one-line message at this edge only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from triton_deploy import __version__
from triton_deploy.errors import TritonDeployError

app = typer.Typer(
    name="tdeploy",
    help="Build Triton model repositories, serve them locally, call and load-test them.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SPEC = Path("build/models.yaml")
DEFAULT_REPOSITORY = Path("model_repository")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """triton-deploy: trained models in, production inference on NVIDIA Triton out."""


def fail(exc: TritonDeployError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def build(
    spec: Annotated[
        Path, typer.Option(help="The build spec.", envvar="TDEPLOY_SPEC")
    ] = DEFAULT_SPEC,
    out: Annotated[
        Path, typer.Option(help="Model repository to write.", envvar="TDEPLOY_REPOSITORY")
    ] = DEFAULT_REPOSITORY,
    only: Annotated[
        list[str] | None, typer.Option(help="Build only these models (repeatable).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Rebuild even when the repository is up to date.")
    ] = False,
) -> None:
    """Train the recipes and write a Triton model repository (configs, weights, manifest)."""
    from triton_deploy.build.pipeline import build_repository
    from triton_deploy.build.spec import load_spec

    try:
        report = build_repository(
            load_spec(spec), out, only=set(only) if only else None, force=force, console=console
        )
    except TritonDeployError as exc:
        raise fail(exc) from None
    if report.up_to_date:
        console.print(f"{report.repository} is up to date with {spec} (use --force to rebuild)")
        return
    console.print(report.table())
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.model}: {skipped.detail}")
    if report.failed:
        raise fail(
            TritonDeployError(
                f"{len(report.failed)} model(s) failed: "
                + ", ".join(r.model for r in report.failed)
            )
        )


@app.command()
def verify(
    url: Annotated[
        str, typer.Option(help="gRPC endpoint.", envvar="TDEPLOY_URL")
    ] = "localhost:8001",
    repository: Annotated[
        Path,
        typer.Option(
            help="The built repository (for its golden cases).", envvar="TDEPLOY_REPOSITORY"
        ),
    ] = DEFAULT_REPOSITORY,
    spec: Annotated[Path, typer.Option(help="The build spec (tolerances).")] = DEFAULT_SPEC,
    model: Annotated[list[str] | None, typer.Option(help="Only these models (repeatable).")] = None,
) -> None:
    """Send held-out inputs to a live server and compare with the source frameworks."""
    from triton_deploy.build.spec import load_spec
    from triton_deploy.build.verify import verify_server

    try:
        report = verify_server(url, repository, load_spec(spec), models=model)
    except TritonDeployError as exc:
        raise fail(exc) from None
    Console().print(report.table())
    if not report.passed:
        raise fail(TritonDeployError(f"verification failed for {', '.join(report.failed_models)}"))


def _register_sub_commands() -> None:
    """Commands that live beside their stage: the client's, the runtime's, the load tests'."""
    from triton_deploy.cli_client import health, infer
    from triton_deploy.cli_serve import drain, serve

    app.command()(infer)
    app.command()(health)
    app.command()(serve)
    app.command()(drain)
    try:
        from triton_deploy.cli_loadtest import loadtest
    except ImportError:  # the loadtest extra (locust) is not installed
        return
    app.command()(loadtest)


_register_sub_commands()


def main() -> None:
    sys.exit(app())
