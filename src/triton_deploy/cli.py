"""The ``tdeploy`` command line: thin typer wrappers over typed functions.

One error exit: a command raises ``TritonDeployError`` (``UsageError`` for bad input) and the
app prints ``error: <message>`` on stderr and exits with code 1; nowhere else turns errors
into exit codes. Shared options (URL, deadline, TLS, headers, token, repository, spec) are
defined once, with one environment variable each, in ``cli_options``. Commands of other areas
live in ``cli_<area>.py`` and are registered with one line in ``_register_sub_commands``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from triton_deploy import __version__
from triton_deploy.cli_options import (
    DEFAULT_REPOSITORY,
    DEFAULT_SPEC,
    DEFAULT_URL,
    Ca,
    Cert,
    Headers,
    Key,
    Repository,
    Spec,
    Timeout,
    Tls,
    Token,
    Url,
    connection,
)
from triton_deploy.errors import TritonDeployError

__all__ = ["DEFAULT_REPOSITORY", "DEFAULT_SPEC", "app", "console", "main", "print_error"]

console = Console(stderr=True)


def print_error(exc: BaseException) -> None:
    """``error: <message>`` on stderr: the message as the error wrote it; client errors (which
    may quote a server's multi-line text) on one line."""
    from triton_deploy.clients import ClientError

    message = str(exc)
    if isinstance(exc, ClientError):
        message = " ".join(message.split())
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    """The app's command group: the one place where ``TritonDeployError`` becomes exit 1."""

    def invoke(self, ctx: Any) -> Any:  # a click.Context (typer vendors click)
        try:
            return super().invoke(ctx)
        except TritonDeployError as exc:
            print_error(exc)
            raise typer.Exit(code=1) from None


app = typer.Typer(
    name="tdeploy",
    cls=_Group,
    help="Build Triton model repositories, serve them locally, call and load-test them.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
)


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


def fail(exc: TritonDeployError) -> NoReturn:
    """Deprecated: raise the ``TritonDeployError`` instead (the app prints it and exits 1)."""
    raise exc


@app.command()
def build(
    spec: Spec = DEFAULT_SPEC,
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

    spec_path = find_spec(spec)
    try:
        report = build_repository(
            load_spec(spec_path),
            out,
            only=set(only) if only else None,
            force=force,
            allow_failed=allow_failed,
            console=console,
        )
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
        for failed in report.failed:
            print_error(TritonDeployError(f"model '{failed.model}': {failed.detail}; {kept}"))
        raise typer.Exit(code=1)
    console.print(f"[bold green]built[/] {report.repository}")


@app.command()
def serve(
    repository: Repository = DEFAULT_REPOSITORY,
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
    log_server: Annotated[
        bool, typer.Option(help="Echo the server's warnings and errors (--no-log-server: none).")
    ] = True,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Echo the server's whole log: its option, backend and model tables and info "
            "lines too.",
        ),
    ] = False,
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
    from triton_deploy.runtime.logs import worth_showing
    from triton_deploy.runtime.server import TritonServer

    tracing = None
    if trace:
        tracing = TraceSettings.parse(trace)
        tracing.prepare()

    def echo(line: str) -> None:
        if verbose or worth_showing(line):
            print(line, file=sys.stderr, flush=True)

    server = TritonServer(
        repository,
        grpc_port=grpc_port,
        http_port=http_port,
        metrics_port=metrics_port,
        address=address,
        exit_timeout_s=exit_timeout,
        extra_args=[*(triton_arg or []), *(tracing.args() if tracing else [])],
        on_log_line=echo if log_server or verbose else None,
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        console.print(
            f"\n{signal.Signals(signum).name}: stopping, letting in-flight requests finish"
        )
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server.start()
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
    url: Url = DEFAULT_URL,
    repository: Annotated[
        Path,
        typer.Option(
            help="The built repository (for its golden cases).", envvar="TDEPLOY_REPOSITORY"
        ),
    ] = DEFAULT_REPOSITORY,
    spec: Spec = DEFAULT_SPEC,
    model: Annotated[list[str] | None, typer.Option(help="Only these models (repeatable).")] = None,
    timeout: Timeout = 60.0,
    header: Headers = None,
    token: Token = None,
    tls: Tls = False,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
) -> None:
    """Send held-out inputs to a live server and compare with the source frameworks.

    Exit code 0: every served model matches; 1: a model differs, or the check could not run.

    [dim]tdeploy verify --url preview.ml.svc:8001 --ca ca.pem -H triton-grpc-protocol-infer=KEY[/]
    """
    from triton_deploy.build.spec import load_spec
    from triton_deploy.build.verify import verify_server

    options = connection(timeout, header, token, tls, ca, cert, key)
    report = verify_server(
        url,
        repository,
        load_spec(spec) if spec is not None else None,
        models=model,
        timeout=options["timeout"],
        headers=options["headers"],
        ssl=options["ssl"],
        root_certificates=options["root_certificates"],
        certificate_chain=options["certificate_chain"],
        private_key=options["private_key"],
    )
    Console().print(report.table())
    if not report.passed:
        raise TritonDeployError(f"verification failed for {', '.join(report.failed_models)}")


def _register_sub_commands() -> None:
    """Commands that live beside their stage, one line each (``cli_<area>.py`` modules import
    nothing heavy: a command imports what it needs when it runs)."""
    from triton_deploy import (
        cli_bench,
        cli_client,
        cli_init,
        cli_loadtest,
        cli_monitor,
        cli_rollout,
    )

    app.command()(cli_init.init)
    app.command()(cli_client.infer)
    app.command()(cli_client.health)
    app.command()(cli_bench.bench)
    app.command()(cli_bench.tune)
    app.command()(cli_loadtest.loadtest)  # says how to install the extra when locust is missing
    cli_rollout.register(app)  # rollout, promote, abort, rollback, status
    app.command()(cli_monitor.monitor)
    app.command("inference-log")(cli_monitor.inference_log)


_register_sub_commands()


def main() -> None:
    sys.exit(app())
