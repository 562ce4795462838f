"""The ``tdeploy`` command line: thin typer wrappers over typed functions.

One error exit: a command raises ``TritonDeployError`` (``UsageError`` for bad input) and the
app prints ``error: <message>`` on stderr and exits with code 1; nowhere else turns errors
into exit codes. Shared options (URL, deadline, TLS, headers, token, repository, spec) are
defined once, with one environment variable each, in ``cli_options``. Commands of other areas
live in ``cli_<area>.py`` and are registered with one line in ``_register_sub_commands``.
"""

from __future__ import annotations

import sys
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
    Spec,
    Timeout,
    Tls,
    Token,
    Url,
    connection,
)
from triton_deploy.errors import ResourceError, TritonDeployError

__all__ = ["DEFAULT_REPOSITORY", "DEFAULT_SPEC", "app", "console", "main", "print_error"]

console = Console(stderr=True)


def print_error(exc: BaseException) -> None:
    """``error: <message>`` on stderr: the message as the error wrote it; client errors (which
    may quote a server's multi-line text) on one line."""
    # a ClientError exists only where the client was imported: importing it here could fail
    # for the very reason being reported (out of file descriptors, memory)
    clients = sys.modules.get("triton_deploy.clients")
    message = str(exc)
    if clients is not None and isinstance(exc, clients.ClientError):
        message = " ".join(message.split())
    try:
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    except Exception:  # e.g. out of file descriptors: rich cannot even load its tables
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()


class _Group(TyperGroup):
    """The app's command group: the one place where ``TritonDeployError`` becomes exit 1, and
    so does a resource failure (an ``OSError`` such as ENOSPC, EACCES, EMFILE anywhere in the
    exception's chain: ``resources.resource_error``)."""

    def invoke(self, ctx: Any) -> Any:  # a click.Context (typer vendors click)
        from triton_deploy.resources import EXHAUSTION_ERRNOS, find_os_error, resource_error

        try:
            return super().invoke(ctx)
        except TritonDeployError as exc:
            # the machine ran out of something (disk, file descriptors, memory) while the
            # project's own check ran: say that, not what the check thought it found
            cause = find_os_error(exc)
            exhausted = (
                not isinstance(exc, ResourceError)
                and cause is not None
                and cause.errno in EXHAUSTION_ERRNOS
            )
            print_error(resource_error(exc) if exhausted else exc)  # type: ignore[arg-type]
            raise typer.Exit(code=1) from None
        except (typer.Exit, typer.Abort):  # exits on purpose, whatever happened before them
            raise
        except Exception as exc:  # disk full, permission denied, out of file descriptors, ...
            error = resource_error(exc)
            if error is None:
                raise
            print_error(error)
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
    sign_key: Annotated[
        Path | None,
        typer.Option(
            help="Sign the repository as the build finishes with this PEM elliptic-curve private "
            "key (OpenSSF model signing; see `tdeploy sign` for certificates and keyless).",
            envvar="TDEPLOY_SIGN_KEY",
        ),
    ] = None,
) -> None:
    """Build a Triton model repository from model files (and recipes): configs, converted
    models, golden cases, manifest. The repository is replaced only by a build that passed."""
    from triton_deploy.build.pipeline import build_repository
    from triton_deploy.build.spec import find_spec, load_spec

    spec_path = find_spec(spec)
    if sign_key is not None and not sign_key.is_file():
        from triton_deploy.clients import UsageError

        raise UsageError(f"--sign-key: no such file {str(sign_key)!r}")
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
        _sign_built(report.repository, sign_key)
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
    _sign_built(report.repository, sign_key)


def _sign_built(repository: Path, key: Path | None) -> None:
    if key is None:
        return
    from triton_deploy.repository import manifest_digest, sign_repository

    signature = sign_repository(repository, private_key=key)
    console.print(
        f"[bold green]signed[/] {signature} (manifest {manifest_digest(repository)})",
        highlight=False,
    )


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
    from triton_deploy.runtime.verify import verify_server

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
        cli_repository,
        cli_rollout,
        cli_serve,
    )

    app.command()(cli_init.init)
    app.command()(cli_serve.serve)
    app.command()(cli_serve.drain)
    app.command()(cli_client.infer)
    app.command()(cli_client.health)
    app.add_typer(cli_bench.bench_app, name="bench")  # run (default), overload, tracing, ...
    app.command()(cli_bench.tune)
    app.command()(cli_loadtest.loadtest)  # says how to install the extra when locust is missing
    app.command()(cli_monitor.monitor)
    app.command("inference-log")(cli_monitor.inference_log)
    cli_rollout.register(app)  # rollout, promote, abort, rollback, status
    app.command()(cli_repository.sign)
    app.command("verify-signature")(cli_repository.verify_signature)
    app.command("verify-repository")(cli_repository.verify_repository)


_register_sub_commands()


def main() -> None:
    sys.exit(app())
