"""``tdeploy loadtest``: Locust load tests with SLO gates, locally or against staging.

Registered on the main app by ``cli.py`` (``app.command()(loadtest)``) when the ``loadtest``
extra (locust) is installed. A thin wrapper over ``triton_deploy.loadtests.run_loadtest``;
locust runs in a child process, so importing this module does not import locust.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from triton_deploy.errors import TritonDeployError
from triton_deploy.loadtests.run import DEFAULT_REPORTS, run_loadtest

__all__ = ["loadtest"]

if importlib.util.find_spec("locust") is None:  # cli.py then leaves the command out
    raise ImportError(
        "tdeploy loadtest needs the loadtest extra: pip install 'triton-deploy[loadtest]'"
    )

_SHAPES = ("constant", "step", "spike")


def loadtest(
    host: Annotated[
        str | None,
        typer.Option(
            help="Triton's gRPC endpoint, host:port. Default: build if needed and start a local "
            "server for the run.",
            envvar="TDEPLOY_LOADTEST_HOST",
        ),
    ] = None,
    env: Annotated[
        str,
        typer.Option(
            "--env",
            help="Environment: its SLOs (loadtests/slo/ENV.yaml) and task mix "
            "(loadtests/mix/ENV.yaml); also names the reports.",
            envvar="TDEPLOY_LOADTEST_ENV",
        ),
    ] = "local",
    slo: Annotated[
        Path | None,
        typer.Option(help="SLO file instead of the environment's.", envvar="TDEPLOY_SLO_FILE"),
    ] = None,
    mix: Annotated[
        Path | None,
        typer.Option(help="Task mix file instead of the environment's.", envvar="TDEPLOY_MIX_FILE"),
    ] = None,
    shape: Annotated[
        str,
        typer.Option(
            help="Load shape: constant, step (ramp in --ramp-steps steps) or spike.",
            envvar="TDEPLOY_LOAD_SHAPE",
        ),
    ] = "constant",
    users: Annotated[int, typer.Option("--users", "-u", help="Peak number of users.")] = 16,
    spawn_rate: Annotated[
        float, typer.Option("--spawn-rate", "-r", help="Users started per second.")
    ] = 8.0,
    run_time: Annotated[
        str, typer.Option("--run-time", "-t", help="Duration: 30s, 5m, 1h30m.")
    ] = "30s",
    ramp_steps: Annotated[int, typer.Option(help="Steps of the step shape.")] = 4,
    spike_baseline: Annotated[
        float, typer.Option(help="Users outside the spike, as a fraction of --users.")
    ] = 0.25,
    reports: Annotated[
        Path, typer.Option(help="Folder for the CSV, HTML and PNG reports.")
    ] = DEFAULT_REPORTS,
    repository: Annotated[
        Path,
        typer.Option(help="Repository for the local server.", envvar="TDEPLOY_REPOSITORY"),
    ] = Path("model_repository"),
    spec: Annotated[
        Path, typer.Option(help="Build spec for the local server.", envvar="TDEPLOY_SPEC")
    ] = Path("build/models.yaml"),
    build: Annotated[
        bool, typer.Option(help="Build the repository first when it is out of date (local).")
    ] = True,
    timeout: Annotated[
        float | None, typer.Option(help="Deadline of each call in seconds (retries included).")
    ] = None,
    tls: Annotated[bool, typer.Option(help="Connect with TLS (system CAs unless --ca).")] = False,
    ca: Annotated[
        Path | None, typer.Option(help="TLS: CA bundle (PEM).", envvar="TDEPLOY_CA")
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(help="TLS: client certificate chain (PEM).", envvar="TDEPLOY_CERT"),
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="TLS: client private key (PEM).", envvar="TDEPLOY_KEY")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            metavar="NAME=VALUE",
            help="Metadata sent with every call (repeatable).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token: sent as 'authorization: Bearer TOKEN'.",
            envvar="TDEPLOY_GRPC_TOKEN",
            show_default=False,
        ),
    ] = None,
    locust_args: Annotated[
        list[str] | None,
        typer.Argument(
            help="More locust options after --, e.g. -- --master --expect-workers 2.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load-test the example ensembles with Locust and check the SLOs.

    Exit code 0: every SLO met; 3: an SLO violated (the summary names it); 1: could not run.
    Reports: REPORTS/ENV_stats.csv, ENV_stats_history.csv, ENV.html, ENV_over_time.png.

    [dim]tdeploy loadtest
    tdeploy loadtest --host triton.staging.example.com:443 --env staging --tls --shape step -t 5m[/]
    """
    console = Console(stderr=True)
    if shape not in _SHAPES:
        _fail(console, f"--shape must be one of {', '.join(_SHAPES)}, got {shape!r}")
    for item in header or []:
        if "=" not in item or item.startswith("="):
            _fail(console, f"--header takes NAME=VALUE, got {item!r}")
    try:
        result = run_loadtest(
            host=host,
            environment=env,
            slo_file=slo,
            mix_file=mix,
            shape=shape,
            users=users,
            spawn_rate=spawn_rate,
            run_time=run_time,
            ramp_steps=ramp_steps,
            spike_baseline=spike_baseline,
            reports=reports,
            repository=repository,
            spec=spec,
            build=build,
            grpc_timeout=timeout,
            tls=tls,
            ca=ca,
            cert=cert,
            key=key,
            headers=header or [],
            token=token,
            locust_args=locust_args or [],
            console=console,
        )
    except TritonDeployError as exc:
        _fail(console, str(exc))
    console.print(
        f"reports: {result.html}, {result.csv_prefix}_stats.csv, {result.history_csv}"
        + (f", {result.png}" if result.png else "")
    )
    console.print(f"load test finished in {result.seconds:.0f} s, exit code {result.exit_code}")
    if result.exit_code != 0:
        raise typer.Exit(code=result.exit_code)


def _fail(console: Console, message: str) -> NoReturn:
    console.print(
        f"[bold red]error:[/] {' '.join(message.split())}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(code=1)
