"""``tdeploy serve`` and ``tdeploy drain``: the local Triton runtime at the command line.

Registered on the main app by ``cli.py``. ``serve`` runs the real tritonserver in the
foreground under a ``Supervisor`` (restarts after a crash, bounded, with backoff); SIGINT,
SIGTERM and SIGHUP drain it (no in-flight request lost, ensembles included) and stop it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from triton_deploy.cli_options import (
    DEFAULT_REPOSITORY,
    DEFAULT_URL,
    Headers,
    Repository,
    Url,
    parse_headers,
)
from triton_deploy.cli_repository import CertificateChain, Identity, OidcIssuer, PublicKey
from triton_deploy.errors import TritonDeployError
from triton_deploy.runtime.admin import ADMIN_HEADER, RunState

__all__ = ["drain", "serve"]

console = Console(stderr=True)
DEFAULT_MAX_INFLIGHT = 32


def _say(message: str) -> None:
    # the terminal may be gone (SIGHUP): keep draining regardless
    with contextlib.suppress(OSError, ValueError):
        console.print(message, highlight=False, soft_wrap=True)


def serve(
    repository: Repository = DEFAULT_REPOSITORY,
    grpc_port: Annotated[int, typer.Option(help="gRPC port.", envvar="TDEPLOY_GRPC_PORT")] = 8001,
    http_port: Annotated[
        int,
        typer.Option(
            help="HTTP port (health, metadata, statistics; inference only with --http-inference).",
            envvar="TDEPLOY_HTTP_PORT",
        ),
    ] = 8000,
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
        int,
        typer.Option(help="Seconds in-flight requests get to finish on shutdown (drain + exit)."),
    ] = 30,
    http_inference: Annotated[
        bool,
        typer.Option(
            help="Serve inference over HTTP too, behind a guard that bounds body size and JSON "
            "nesting (Triton 2.51 crashes on deeply nested JSON). gRPC is the default protocol.",
            envvar="TDEPLOY_HTTP_INFERENCE",
        ),
    ] = False,
    http_max_body_bytes: Annotated[
        int, typer.Option(help="With --http-inference: largest request body accepted.", min=1)
    ] = 64 * 1024 * 1024,
    http_max_json_depth: Annotated[
        int, typer.Option(help="With --http-inference: deepest JSON nesting accepted.", min=1)
    ] = 64,
    max_inflight: Annotated[
        int | None,
        typer.Option(
            help="Overload protection: at most this many requests inside Triton; more wait in "
            "a bounded queue in front of it (HAProxy), and beyond --max-queued they are "
            "answered UNAVAILABLE at once. Default 32 when HAProxy is installed; 0: off.",
            min=0,
            envvar="TDEPLOY_MAX_INFLIGHT",
        ),
    ] = None,
    max_queued: Annotated[
        int | None,
        typer.Option(
            help="Requests that may wait in front of Triton (default: --max-inflight).", min=0
        ),
    ] = None,
    max_restarts: Annotated[
        int,
        typer.Option(
            help="Restart a crashed server at most this many times within --restart-window "
            "(0: never), with backoff 1, 2, 4, ... s.",
            min=0,
        ),
    ] = 5,
    restart_window: Annotated[
        float, typer.Option(help="Seconds over which --max-restarts is counted.", min=1)
    ] = 600.0,
    allow_failed_parity: Annotated[
        bool,
        typer.Option(help="Also serve models whose build manifest says parity FAILED."),
    ] = False,
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
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            help="Key of the admin APIs (model repository, shared memory, trace, logging; "
            "header triton-admin-key). Default: a random key for this run, which tdeploy "
            "commands read from a file only you can read. Prefer the environment variable.",
            envvar="TDEPLOY_ADMIN_KEY",
            show_default=False,
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
    allow_unverified: Annotated[
        bool,
        typer.Option(
            help="Serve even when files differ from the build manifest (a repository edited by "
            "hand), with a warning naming them.",
        ),
    ] = False,
    require_signature: Annotated[
        bool,
        typer.Option(
            help="Refuse a repository whose signature (model.sig, `tdeploy sign`) is missing or "
            "does not verify with --public-key / --certificate-chain.",
            envvar="TDEPLOY_REQUIRE_SIGNATURE",
        ),
    ] = False,
    public_key: PublicKey = None,
    certificate_chain: CertificateChain = None,
    signer_identity: Identity = None,
    signer_oidc_issuer: OidcIssuer = None,
) -> None:
    """Serve the repository on the real Triton Inference Server (CPU), in the foreground."""
    from triton_deploy.cli_repository import trust_policy
    from triton_deploy.observability import TraceSettings
    from triton_deploy.repository import verify_for_serving
    from triton_deploy.runtime.logs import worth_showing
    from triton_deploy.runtime.server import TritonServer
    from triton_deploy.runtime.shedder import haproxy_binary
    from triton_deploy.runtime.supervisor import Supervisor

    # Nothing is served that the build did not produce: every file against the manifest (and
    # the signature when asked) before tritonserver starts.
    trust = verify_for_serving(
        repository,
        trust_policy(
            allow_unverified=allow_unverified,
            require_signature=require_signature,
            public_key=public_key,
            certificate_chain=certificate_chain,
            identity=signer_identity,
            oidc_issuer=signer_oidc_issuer,
        ),
        warn=lambda message: console.print(
            f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True
        ),
    )
    overload = ""
    if max_inflight is None:
        try:
            haproxy_binary()
            max_inflight = DEFAULT_MAX_INFLIGHT
        except TritonDeployError as exc:
            overload = f"[yellow]overload protection off[/]: {exc}"
    if max_inflight:
        queued = max_queued if max_queued is not None else max_inflight
        overload = f"at most {max_inflight} requests in Triton, {queued} queued in front (HAProxy)"
    elif not overload:
        overload = "overload protection off (--max-inflight 0)"

    tracing = None
    if trace:
        tracing = TraceSettings.parse(trace)
        tracing.prepare()

    def _echo(line: str) -> None:
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
        on_log_line=_echo if log_server or verbose else None,
        on_event=_say,
        http_inference=http_inference,
        http_max_body_bytes=http_max_body_bytes,
        http_max_json_depth=http_max_json_depth,
        allow_failed_parity=allow_failed_parity,
        max_inflight=max_inflight or None,
        max_queued=max_queued,
        admin_key=admin_key,
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        _say(f"\n{signal.Signals(signum).name}: stopping, letting in-flight requests finish")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    server.start()  # a TritonDeployError becomes "error: ..." and exit code 1 in the app
    state = RunState(
        pid=os.getpid(),
        grpc_url=server.grpc_url,
        http_url=server.http_url,
        metrics_url=server.metrics_url,
        admin_key=server.admin_key or "",
    )
    try:
        state_file = str(state.write())
    except OSError as exc:  # the key still works when given; only the lookup is lost
        state_file = f"not written: {exc.strerror} ({exc.filename})"
    for name, reason in server.skipped.items():
        console.print(f"[yellow]not loaded[/] {name}: {reason}", highlight=False)
    http = "health, metadata" + (", inference (guarded)" if http_inference else "")
    console.print(
        f"[bold green]ready[/]: {len(server.loaded)} models ({', '.join(sorted(server.loaded))})\n"
        f"  gRPC     {server.grpc_url}\n  HTTP     {server.http_url}  ({http})\n"
        f"  metrics  {server.metrics_url}\n"
        f"  verified {escape(trust.summary())}\n"
        f"  overload {overload}\n"
        f"  admin    model repository, shared memory, trace, logging: header {ADMIN_HEADER} "
        f"({'--admin-key' if admin_key else 'a key made for this run'}; {state_file})\n"
        f"  watched  tritonserver, {'load shedder, ' if max_inflight else ''}Python backend "
        f"stubs (--max-restarts {max_restarts} within {restart_window:g} s)\n"
        + (f"  traces   {tracing.describe()}\n" if tracing else "")
        + f"  try:     tdeploy health --url {server.grpc_url}\n"
        f"           tdeploy verify --url {server.grpc_url}\n"
        "  stop:    Ctrl-C (drains: in-flight requests finish)",
        highlight=False,
    )
    supervisor = Supervisor(
        server, max_restarts=max_restarts, window_s=restart_window, on_event=_say
    )
    try:
        code = supervisor.run(stop)
    finally:
        state.remove()
    _say(f"tritonserver exited with code {server.returncode}")
    if code != 0:
        if supervisor.gave_up:
            _say(f"[red]error[/]: serving stopped: {supervisor.gave_up}")
            # Everything is stopped and cleaned up (server, stubs, shared memory, run-state
            # file): exit now rather than after a second of interpreter teardown (grpc, numpy),
            # so that a process manager sees the failure at once.
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(1)
        raise typer.Exit(code=1)


def drain(
    url: Url = DEFAULT_URL,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for in-flight requests.", min=0)
    ] = 30.0,
    header: Headers = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            help="Admin key (header triton-admin-key). Default: TDEPLOY_ADMIN_KEY, else the key "
            "of the local `tdeploy serve` at --url (from its run-state file).",
            envvar="TDEPLOY_ADMIN_KEY",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Unload every model of a server in explicit model-control mode, waiting for in-flight
    requests (ensembles first): then SIGTERM stops it without losing any."""
    from triton_deploy.runtime.admin import admin_key_for, grpc_admin_headers
    from triton_deploy.runtime.drain import drain as drain_server

    # another header name (the chart's headerKey): -H triton-grpc-protocol-<key>=<value>
    headers = grpc_admin_headers(admin_key_for(url, admin_key)) | parse_headers(header)
    report = drain_server(url, timeout_s=timeout, headers=headers, log=_say)
    _say(report.summary())
    if not report.complete:
        raise typer.Exit(code=1)
