"""``tdeploy loadtest``: Locust load tests with SLO gates, locally or against staging.

Registered on the main app by ``cli.py`` (``app.command()(loadtest)``), always: without the
``loadtest`` extra (locust) the command says how to install it. A thin wrapper over
``triton_deploy.loadtests.run_loadtest``; locust runs in a child process, so importing this
module does not import locust (nor the load tests' modules: the command does, when it runs).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from triton_deploy.cli_options import (
    DEFAULT_REPOSITORY,
    DEFAULT_SPEC,
    Ca,
    Cert,
    Headers,
    Key,
    Repository,
    Spec,
    Tls,
    Token,
    parse_headers,
)
from triton_deploy.defaults import DEFAULT_LOADTEST_REPORTS
from triton_deploy.errors import TritonDeployError

__all__ = ["loadtest"]

_SHAPES = ("constant", "step", "spike")
_NO_LOCUST = "tdeploy loadtest needs the loadtest extra: pip install 'triton-deploy[loadtest]'"


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
    ] = DEFAULT_LOADTEST_REPORTS,
    repository: Repository = DEFAULT_REPOSITORY,
    spec: Spec = DEFAULT_SPEC,
    build: Annotated[
        bool, typer.Option(help="Build the repository first when it is out of date (local).")
    ] = True,
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Deadline of each call in seconds (retries included).",
            envvar="TDEPLOY_TIMEOUT",
            show_default=False,
        ),
    ] = None,
    tls: Tls = False,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    header: Headers = None,
    token: Token = None,
    locust_args: Annotated[
        list[str] | None,
        typer.Argument(
            help="More locust options after --, e.g. -- --master --expect-workers 2.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load-test a Triton server with Locust (the task mix's workloads) and check the SLOs.

    Exit code 0: every SLO met; 3: an SLO violated (the summary names it); 1: could not run.
    Reports: REPORTS/ENV_stats.csv, ENV_stats_history.csv, ENV.html, ENV_over_time.png.

    [dim]tdeploy loadtest
    tdeploy loadtest --host triton.staging.example.com:443 --env staging --tls --shape step -t 5m[/]
    """
    if importlib.util.find_spec("locust") is None:
        raise TritonDeployError(_NO_LOCUST)
    from triton_deploy.clients import UsageError  # imported when the command runs, not at start
    from triton_deploy.loadtests.run import run_loadtest

    console = Console(stderr=True)
    if shape not in _SHAPES:
        raise UsageError(f"--shape must be one of {', '.join(_SHAPES)}, got {shape!r}")
    headers = parse_headers(header)
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
        builder=build_for_loadtest,
        grpc_timeout=timeout,
        tls=tls,
        ca=ca,
        cert=cert,
        key=key,
        headers=[f"{name}={value}" for name, value in headers.items()],
        token=token,
        locust_args=locust_args or [],
        console=console,
    )
    console.print(
        f"reports: {result.html}, {result.csv_prefix}_stats.csv, {result.history_csv}"
        + (f", {result.png}" if result.png else "")
    )
    console.print(f"load test finished in {result.seconds:.0f} s, exit code {result.exit_code}")
    if result.exit_code != 0:
        raise typer.Exit(code=result.exit_code)


def build_for_loadtest(repository: Path, spec: Path | None, console: Console) -> None:
    """The incremental build before a local load test: seconds when it is up to date."""
    try:
        from triton_deploy.build.pipeline import build_repository
        from triton_deploy.build.spec import load_spec
    except ImportError as exc:  # the build extra is not installed: serve what is there
        console.print(f"[yellow]not building[/] ({exc.name} missing): serving {repository} as is")
        return
    from triton_deploy.build.spec import find_spec

    report = build_repository(load_spec(find_spec(spec)), Path(repository), console=console)
    if report.failed:
        from triton_deploy.errors import BuildError

        raise BuildError(
            f"{len(report.failed)} model(s) failed to build: "
            + ", ".join(r.model for r in report.failed)
        )
