"""Run a load test end to end: check the files, start a local server if no host is given, run
locust headless, stop the server, draw the PNG. ``tdeploy loadtest`` and ``make loadtest`` call
``run_loadtest``.

    result = run_loadtest(environment="local", users=16, spawn_rate=8, run_time="30s")
    result.exit_code     # locust's: 0 all SLOs met, 3 an SLO violated, 2 refused to start
    result.png           # reports/loadtest/local_over_time.png

Locust runs in its own process (``python -m locust``): it monkey-patches the interpreter for
gevent, which must not happen to the caller.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from triton_deploy.defaults import DEFAULT_LOADTEST_REPORTS

from .config import LOCUSTFILE, LoadTestConfigError, load_yaml_model, mix_path, slo_path
from .objectives import check_coverage, load_slo
from .shapes import make_shape
from .taskmix import TaskMix

__all__ = ["LoadTestResult", "parse_duration", "run_loadtest"]

# Locust's own start-up and shutdown, on top of --run-time, before we call it hung.
_GRACE_S = 180.0


@dataclass(frozen=True)
class LoadTestResult:
    exit_code: int
    host: str
    command: list[str]
    csv_prefix: Path
    html: Path
    png: Path | None
    seconds: float

    @property
    def history_csv(self) -> Path:
        return Path(f"{self.csv_prefix}_stats_history.csv")


def parse_duration(text: str) -> float:
    """Locust's time spans: ``90``, ``30s``, ``5m``, ``1h30m``, ``1m30s``."""
    text = text.strip()
    if text.isdigit():
        return float(text)
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", text)
    if not text or match is None:
        raise LoadTestConfigError(f"--run-time takes e.g. 30s, 5m, 1h30m; got {text!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def run_loadtest(
    *,
    host: str | None = None,
    environment: str = "local",
    slo_file: Path | None = None,
    mix_file: Path | None = None,
    shape: str = "constant",
    users: int = 16,
    spawn_rate: float = 8.0,
    run_time: str = "30s",
    ramp_steps: int = 4,
    spike_baseline: float = 0.25,
    reports: Path = DEFAULT_LOADTEST_REPORTS,
    repository: Path = Path("model_repository"),
    spec: Path | None = None,
    build: bool = True,
    builder: Callable[[Path, Path | None, Console], None] | None = None,
    grpc_timeout: float | None = None,
    tls: bool = False,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    headers: Sequence[str] = (),
    token: str | None = None,
    locust_args: Sequence[str] = (),
    console: Console | None = None,
) -> LoadTestResult:
    """Run one load test (see the module docstring); raises ``LoadTestConfigError`` for bad
    files or options before anything starts, ``ServerStartError`` if the local server fails.

    Without ``host``, ``builder(repository, spec, console)`` runs first when ``build`` is set
    (``tdeploy loadtest`` passes the incremental ``tdeploy build``; this package does not import
    the build)."""
    console = console or Console(stderr=True)
    slo_file = slo_file or slo_path(environment)
    mix_file = mix_file or mix_path(environment)
    # Everything that can be checked here is checked before a server starts.
    check_coverage(
        load_slo(slo_file),
        load_yaml_model(mix_file, TaskMix, "task mix"),
        slo_file=slo_file,
        mix_file=mix_file,
    )
    make_shape(
        shape,
        users=users,
        spawn_rate=spawn_rate,
        run_time_s=parse_duration(run_time),
        steps=ramp_steps,
        spike_baseline=spike_baseline,
    )
    for option, path in (("--ca", ca), ("--cert", cert), ("--key", key)):
        if path is not None and not Path(path).is_file():
            raise LoadTestConfigError(f"{option}: no such file {str(path)!r}")

    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    prefix = reports / environment
    html = reports / f"{environment}.html"
    png = reports / f"{environment}_over_time.png"
    for stale in (Path(f"{prefix}_stats_history.csv"), html, png):
        stale.unlink(missing_ok=True)

    started = time.monotonic()
    with _target(host, repository, spec, builder if build else None, console) as target:
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "--host",
            target,
            "--users",
            str(users),
            "--spawn-rate",
            str(spawn_rate),
            "--run-time",
            run_time,
            "--target-env",
            environment,
            "--slo-file",
            str(slo_file),
            "--mix-file",
            str(mix_file),
            "--load-shape",
            shape,
            "--ramp-steps",
            str(ramp_steps),
            "--spike-baseline",
            str(spike_baseline),
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--html",
            str(html),
            *_grpc_args(grpc_timeout, tls, ca, cert, key, headers),
            *locust_args,
        ]
        env = dict(os.environ)
        if token:  # through the environment, not the command line (visible in ps)
            env["TDEPLOY_TOKEN"] = token
        # Golden-case workloads read the repository's golden cases.
        env["TDEPLOY_REPOSITORY"] = str(Path(repository).resolve())
        console.print(f"[bold]locust[/] → {target}: {shape} load, {users} users, {run_time}")
        exit_code = _run_locust(command, env, parse_duration(run_time) + _GRACE_S, console)
    seconds = time.monotonic() - started

    result_png: Path | None = None
    history = Path(f"{prefix}_stats_history.csv")
    if history.is_file():
        try:
            from .plot import plot_history  # matplotlib: only once there is something to draw

            result_png = plot_history(
                history, png, title=f"{environment}: {shape} load, {users} users → {target}"
            )
        except Exception as exc:  # the run's verdict stands without its picture
            console.print(f"[yellow]warning:[/] no PNG from {history}: {exc}")
    return LoadTestResult(exit_code, target, command, prefix, html, result_png, seconds)


def _grpc_args(
    timeout: float | None,
    tls: bool,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    headers: Sequence[str],
) -> list[str]:
    args: list[str] = []
    if timeout is not None:
        args += ["--grpc-timeout", str(timeout)]
    if tls:
        args.append("--grpc-tls")
    for option, path in (("--grpc-ca", ca), ("--grpc-cert", cert), ("--grpc-key", key)):
        if path is not None:
            args += [option, str(path)]
    if headers:
        args += ["--grpc-header", ",".join(headers)]
    return args


@contextlib.contextmanager
def _target(
    host: str | None,
    repository: Path,
    spec: Path | None,
    builder: Callable[[Path, Path | None, Console], None] | None,
    console: Console,
) -> Iterator[str]:
    """``host`` as given, or a local tritonserver on the (re)built repository."""
    if host:
        yield host
        return
    from triton_deploy.runtime.server import TritonServer

    if builder is not None:
        builder(Path(repository), spec, console)
    console.print(f"starting tritonserver on {repository} ...")
    with TritonServer(Path(repository), exit_timeout_s=5) as server:
        console.print(f"tritonserver ready at {server.grpc_url} ({', '.join(server.loaded)})")
        yield server.grpc_url
    console.print("tritonserver stopped")


def _run_locust(
    command: list[str], env: Mapping[str, str], timeout_s: float, console: Console
) -> int:
    process = subprocess.Popen(command, env=dict(env))
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        console.print(f"[bold red]locust did not finish within {timeout_s:.0f} s: stopping it[/]")
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 124
    except BaseException:  # Ctrl-C: locust got it too; let it write its reports
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        if process.poll() is None:
            process.kill()
        raise
