"""Locust glue: command-line options, the task mix, the load shape and the SLO gate.

Imported by the locustfile (after ``import locust``); everything here runs inside locust.

- ``init_command_line_parser``: our options, each bound to an environment variable;
- ``init``: read and validate the SLO and task-mix files, the shape and the TLS files before
  anything starts (a bad one ends the process with exit code 2 and a one-line reason);
- ``test_start``: apply the task mix (again) on every process; workers get the master's
  options with their first spawn message, so a distributed run uses the master's mix; the
  mix's workloads build their payloads (``Workload.prepare``) before users start;
- ``quitting`` (master / single process): compare the run with the SLO; the process exit code
  becomes 0 (all met) or ``EXIT_SLO_VIOLATED`` (3); ``quit``: print the summary last.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, between, events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import RequestStats, StatsEntry

from triton_deploy.clients import DEFAULT_TIMEOUT_S

from .config import LoadTestConfigError, load_yaml_model, mix_path, slo_path
from .objectives import (
    EXIT_SLO_VIOLATED,
    Measured,
    SloReport,
    SloSpec,
    check_coverage,
    evaluate,
    load_slo,
)
from .shapes import SHAPES, Shape, make_shape
from .taskmix import TaskMix
from .users import WorkloadUser

__all__ = ["EXIT_BAD_CONFIG", "LoadShape", "measurements"]

logger = logging.getLogger("triton_deploy.loadtests")

#: Exit code of a run refused before it started (bad SLO / mix file, bad option).
EXIT_BAD_CONFIG = 2


@events.init_command_line_parser.add_listener
def add_options(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--target-env",
        default="local",
        env_var="TDEPLOY_LOADTEST_ENV",
        help="Environment whose files to use: loadtests/slo/<env>.yaml, loadtests/mix/<env>.yaml.",
    )
    parser.add_argument(
        "--slo-file", default="", env_var="TDEPLOY_SLO_FILE", help="SLO file (default: by env)."
    )
    parser.add_argument(
        "--mix-file", default="", env_var="TDEPLOY_MIX_FILE", help="Task mix (default: by env)."
    )
    parser.add_argument(
        "--load-shape",
        default="constant",
        choices=SHAPES,
        env_var="TDEPLOY_LOAD_SHAPE",
        help="constant: -u users all along; step: --ramp-steps steps up to -u over -t; spike: "
        "--spike-baseline x -u users, -u users from 40 %% to 60 %% of -t.",
    )
    parser.add_argument(
        "--ramp-steps", type=int, default=4, env_var="TDEPLOY_RAMP_STEPS", help="Steps (step)."
    )
    parser.add_argument(
        "--spike-baseline",
        type=float,
        default=0.25,
        env_var="TDEPLOY_SPIKE_BASELINE",
        help="Users outside the spike, as a fraction of -u (spike).",
    )
    parser.add_argument(
        "--grpc-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        env_var="TDEPLOY_TIMEOUT",
        help="Deadline of each call in seconds, retries included.",
    )
    parser.add_argument(
        "--grpc-tls",
        action="store_true",
        default=False,
        env_var="TDEPLOY_TLS",
        help="Connect with TLS (system CAs unless --grpc-ca).",
    )
    parser.add_argument("--grpc-ca", default="", env_var="TDEPLOY_CA", help="TLS: CA bundle (PEM).")
    parser.add_argument(
        "--grpc-cert", default="", env_var="TDEPLOY_CERT", help="TLS: client cert (PEM)."
    )
    parser.add_argument(
        "--grpc-key", default="", env_var="TDEPLOY_KEY", help="TLS: client key (PEM)."
    )
    parser.add_argument(
        "--grpc-header",
        default="",
        env_var="TDEPLOY_HEADERS",
        help="Metadata sent with every call: NAME=VALUE[,NAME=VALUE].",
    )
    parser.add_argument(
        "--grpc-token",
        default="",
        env_var="TDEPLOY_TOKEN",
        is_secret=True,
        help="Sent as 'authorization: Bearer TOKEN' (prefer the environment variable).",
    )


@dataclass
class _Run:
    """What ``init`` read, for the listeners that follow."""

    slo: SloSpec | None = None
    slo_file: Path | None = None
    report: SloReport | None = None


_run = _Run()


def _files(options: Any) -> tuple[Path, Path]:
    env = getattr(options, "target_env", "local")
    slo = Path(options.slo_file) if getattr(options, "slo_file", "") else slo_path(env)
    mix = Path(options.mix_file) if getattr(options, "mix_file", "") else mix_path(env)
    return slo, mix


def _load_mix(options: Any) -> TaskMix:
    return load_yaml_model(_files(options)[1], TaskMix, "task mix")


def shape_from_options(options: Any) -> Shape:
    return make_shape(
        options.load_shape,
        users=options.num_users or 1,
        spawn_rate=options.spawn_rate or 1,
        run_time_s=options.run_time or None,
        steps=options.ramp_steps,
        spike_baseline=options.spike_baseline,
    )


def _check_target(environment: Environment, options: Any) -> None:
    host = environment.host
    if host and "://" in host:
        raise LoadTestConfigError(
            f"--host takes host:port of Triton's gRPC endpoint (e.g. 127.0.0.1:8001), got {host!r}"
        )
    if not host and options.headless:
        raise LoadTestConfigError("no gRPC endpoint: give --host host:port")
    for option in ("grpc_ca", "grpc_cert", "grpc_key"):
        path = getattr(options, option)
        if path and not os.path.isfile(path):
            raise LoadTestConfigError(f"--{option.replace('_', '-')}: no such file {path!r}")


def apply_mix(environment: Environment, mix: TaskMix) -> None:
    """The mix's workloads and think time for every ``WorkloadUser`` of this process."""
    WorkloadUser.mix = mix
    WorkloadUser.wait_time = between(*mix.think_time_s)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # locust used as a library: nothing to read
        return
    try:
        slo_file, mix_file = _files(options)
        slo = load_slo(slo_file)
        mix = _load_mix(options)
        check_coverage(slo, mix, slo_file=slo_file, mix_file=mix_file)
        if not isinstance(environment.runner, WorkerRunner):
            _check_target(environment, options)
            shape_from_options(options)
        apply_mix(environment, mix)
        _build_payloads(environment, mix)  # before the run's clock starts
    except LoadTestConfigError as exc:
        # Before any user starts; one line, no traceback: the message says what to fix.
        logger.error("%s", exc)
        sys.exit(EXIT_BAD_CONFIG)
    _run.slo, _run.slo_file = slo, slo_file
    logger.info(
        "target %s, SLO %s, task mix %s, load shape %s",
        environment.host,
        slo_file,
        mix_file,
        options.load_shape,
    )


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    mix = (
        _load_mix(environment.parsed_options)
        if environment.parsed_options
        else load_yaml_model(mix_path("local"), TaskMix, "task mix")
    )
    if environment.parsed_options is not None:
        apply_mix(environment, mix)
    _build_payloads(environment, mix)  # at once when init built them (cached), else here


def _build_payloads(environment: Environment, mix: TaskMix) -> None:
    """Build the payload pools before users start: gevent is cooperative, and a second spent
    loading scikit-learn inside the first user would stall (and inflate the timings of) every
    request already in flight. The master sends no requests and needs none.

    A worker builds them on a thread of gevent's pool: it is connected to its master already,
    and its heartbeats must go on meanwhile (a master gives a worker up after 3 s without
    one; loading scikit-learn and the digits images took 8 s on a busy 2-core machine)."""
    if isinstance(environment.runner, MasterRunner):
        return

    def build() -> None:
        for entry in mix.active().values():
            entry.cls.prepare(entry.parsed_options, mix.seed)

    if not isinstance(environment.runner, WorkerRunner):
        build()
        return
    # numpy.testing starts a subprocess when it is first imported (scipy, so scikit-learn,
    # imports it), and gevent watches child processes from its own thread only.
    import numpy.testing  # noqa: F401

    gevent.get_hub().threadpool.apply(build)


def measurements(stats: RequestStats) -> tuple[dict[str, Measured], Measured]:
    """Per model (request name) and total numbers over the whole run."""
    per_model = {
        name: _measured(entry)
        for (name, method), entry in stats.entries.items()
        if method == "grpc"
    }
    return per_model, _measured(stats.total)


def _measured(entry: StatsEntry) -> Measured:
    return Measured(
        requests=entry.num_requests,
        failures=entry.num_failures,
        p50_ms=float(entry.get_response_time_percentile(0.50) or 0),
        p95_ms=float(entry.get_response_time_percentile(0.95) or 0),
        p99_ms=float(entry.get_response_time_percentile(0.99) or 0),
        rps=float(entry.total_rps),
    )


@events.quitting.add_listener
def on_quitting(environment: Environment, **_kwargs: Any) -> None:
    if _run.slo is None or isinstance(environment.runner, WorkerRunner):
        return
    per_model, total = measurements(environment.stats)
    runner = environment.runner
    exceptions = sum(e["count"] for e in runner.exceptions.values()) if runner else 0
    _run.report = evaluate(
        _run.slo, per_model, total, source=str(_run.slo_file), exceptions=exceptions
    )
    environment.process_exit_code = 0 if _run.report.passed else EXIT_SLO_VIOLATED


@events.quit.add_listener
def on_quit(exit_code: int, **_kwargs: Any) -> None:
    # After locust's own tables, so that the verdict is the last thing in the log.
    if _run.report is not None:
        print(_run.report.table(), flush=True)


class LoadShape(LoadTestShape):
    """The shape chosen with ``--load-shape`` (see ``shapes``); reads -u, -r and -t."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._shape: Shape | None = None

    def tick(self) -> tuple[int, float] | None:
        if self._shape is None:
            assert self.runner is not None
            self._shape = shape_from_options(self.runner.environment.parsed_options)
        return self._shape.tick(self.get_run_time())
