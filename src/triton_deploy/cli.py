"""The ``tdeploy`` command line: thin typer wrappers over typed functions.

The project's error becomes exit code 1 with a one-line message at this edge only.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from triton_deploy import __version__
from triton_deploy.errors import ServerStartError, TritonDeployError

app = typer.Typer(
    name="tdeploy",
    help="Build Triton model repositories, serve them locally, call and load-test them.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

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
        Path | None,
        typer.Option(
            help="The build spec [default: ./models.yaml, else ./build/models.yaml].",
            envvar="TDEPLOY_SPEC",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Model repository to write.", envvar="TDEPLOY_REPOSITORY")
    ] = DEFAULT_REPOSITORY,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Rebuild only these models (and what depends on them); repeatable."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Rebuild even when the repository is up to date.")
    ] = False,
    allow_failed: Annotated[
        bool,
        typer.Option(
            help="Replace the repository even when a model fails its parity check "
            "(the manifest marks it FAIL; `tdeploy serve` refuses it unless told otherwise)."
        ),
    ] = False,
) -> None:
    """Build a Triton model repository from model files (and recipes): configs, converted
    models, golden cases, manifest. The repository is replaced only by a build that passed."""
    from triton_deploy.build.pipeline import build_repository
    from triton_deploy.build.spec import find_spec, load_spec

    try:
        spec_path = find_spec(spec)
        report = build_repository(
            load_spec(spec_path),
            out,
            only=set(only) if only else None,
            force=force,
            allow_failed=allow_failed,
            console=console,
        )
    except TritonDeployError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        console.print(f"[bold red]interrupted:[/] {out} is left exactly as it was")
        raise typer.Exit(code=130) from None
    if report.up_to_date:
        console.print(
            f"{report.repository} is up to date with {spec_path} (use --force to rebuild)"
        )
        return
    console.print(report.table())
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {skipped.model}: {skipped.detail}")
    if report.failed:
        kept = (
            "the repository was replaced anyway (--allow-failed)"
            if report.swapped
            else f"{report.repository} is left as it was"
        )
        raise fail(
            TritonDeployError(
                f"{len(report.failed)} model(s) failed: "
                + ", ".join(r.model for r in report.failed)
                + f"; {kept}"
            )
        )
    console.print(f"[bold green]built[/] {report.repository}")


@app.command()
def serve(
    repository: Annotated[
        Path, typer.Option(help="Model repository to serve.", envvar="TDEPLOY_REPOSITORY")
    ] = DEFAULT_REPOSITORY,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.", envvar="TDEPLOY_GRPC_PORT")] = 8001,
    http_port: Annotated[int, typer.Option(help="HTTP port.", envvar="TDEPLOY_HTTP_PORT")] = 8000,
    metrics_port: Annotated[
        int, typer.Option(help="Metrics port.", envvar="TDEPLOY_METRICS_PORT")
    ] = 8002,
    address: Annotated[
        str,
        typer.Option(
            help="Listen address; 0.0.0.0 to accept other machines.", envvar="TDEPLOY_ADDRESS"
        ),
    ] = "127.0.0.1",
    exit_timeout: Annotated[
        int, typer.Option(help="Seconds in-flight requests get to finish on shutdown.")
    ] = 30,
    log_server: Annotated[bool, typer.Option(help="Echo the server's log lines.")] = True,
    triton_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--triton-arg", help="Extra tritonserver flag, e.g. --triton-arg=--log-verbose=1."
        ),
    ] = None,
    trace: Annotated[
        list[str] | None,
        typer.Option(
            "--trace",
            metavar="SETTING=VALUE",
            help="Trace requests (repeatable), as Triton's --trace-config: file=PATH (JSON "
            "files: the inference log), level=TIMESTAMPS|TENSORS (TENSORS: inputs and outputs), "
            "rate=N (every N-th request), count=N, log-frequency=N (traces per file, default "
            "100); or url=http://COLLECTOR:4318/v1/traces for OpenTelemetry.",
        ),
    ] = None,
) -> None:
    """Serve the repository on the real Triton Inference Server (CPU), in the foreground."""
    from triton_deploy.observability import TraceSettings
    from triton_deploy.runtime.server import TritonServer

    tracing = None
    if trace:
        try:
            tracing = TraceSettings.parse(trace)
            tracing.prepare()
        except TritonDeployError as exc:
            raise fail(exc) from None

    server = TritonServer(
        repository,
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        address=address,
        exit_timeout_s=exit_timeout,
        extra_args=[*(triton_arg or []), *(tracing.args() if tracing else [])],
        on_log_line=(lambda line: print(line, file=sys.stderr, flush=True)) if log_server else None,
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        console.print(
            f"\n{signal.Signals(signum).name}: stopping, letting in-flight requests finish"
        )
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server.start()
    except ServerStartError as exc:
        raise fail(exc) from None
    except TritonDeployError as exc:
        raise fail(exc) from None
    for name, reason in server.skipped.items():
        console.print(f"[yellow]not loaded[/] {name}: {reason}")
    console.print(
        f"[bold green]ready[/]: {len(server.loaded)} models ({', '.join(sorted(server.loaded))})\n"
        f"  gRPC     {server.grpc_url}\n  HTTP     {server.http_url}\n  metrics  {server.metrics_url}\n"
        + (f"  traces   {tracing.describe()}\n" if tracing else "")
        + f"  try:     tdeploy health --url {server.grpc_url}\n"
        f"           tdeploy verify --url {server.grpc_url}\n"
        "  stop:    Ctrl-C"
    )

    def _watch() -> None:  # the server may also exit by itself
        server.wait()
        stop.set()

    watcher = threading.Thread(target=_watch, daemon=True)
    watcher.start()
    stop.wait()
    code = server.stop()
    console.print(f"tritonserver exited with code {code}")
    if code not in (0, None):
        raise typer.Exit(code=1)


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
    spec: Annotated[
        Path | None,
        typer.Option(help="A build spec whose tolerances override the golden cases' own."),
    ] = None,
    model: Annotated[list[str] | None, typer.Option(help="Only these models (repeatable).")] = None,
) -> None:
    """Send held-out inputs to a live server and compare with the source frameworks."""
    from triton_deploy.build.spec import load_spec
    from triton_deploy.build.verify import verify_server

    try:
        report = verify_server(
            url, repository, load_spec(spec) if spec is not None else None, models=model
        )
    except TritonDeployError as exc:
        raise fail(exc) from None
    Console().print(report.table())
    if not report.passed:
        raise fail(TritonDeployError(f"verification failed for {', '.join(report.failed_models)}"))


def _register_sub_commands() -> None:
    """Commands that live beside their stage: the client's and the load tests'."""
    from triton_deploy.cli_client import health, infer
    from triton_deploy.cli_init import init
    from triton_deploy.cli_monitor import inference_log, monitor

    app.command()(init)
    app.command()(infer)
    app.command()(health)
    app.command()(monitor)
    app.command("inference-log")(inference_log)
    try:
        from triton_deploy.cli_loadtest import loadtest
    except ImportError:  # the loadtest extra (locust) is not installed
        return
    app.command()(loadtest)


_register_sub_commands()


def main() -> None:
    sys.exit(app())
