"""Benchmark: overload protection and graceful drain on the real local tritonserver.

    tdeploy bench overload [--repository model_repository] [--seconds 60]

One command, one printed summary of each figure against its goal (numbers, never asserted):

1. **as built**: the repository as the build wrote it. Capacity (closed loop, concurrency
   ``--capacity-concurrency``), then the p99 at normal load (open loop, Poisson arrivals at
   ``--normal`` x capacity).
2. **protected**: the same repository with a bounded queue on every dynamically batched model
   (``dynamic_batching.default_queue_policy.max_queue_size``, nothing else: no timeout, no
   override; see the README for why) and client deadlines (``--deadline-ms``), which Triton
   turns into request cancellation. Normal load again (is p99 unharmed?), then ``--factor`` x
   capacity for ``--seconds`` (memory, fast rejections, p99 of the accepted requests, work done
   for requests whose client had already given up), then normal load again (how soon is p99
   back?).
3. **drain**: c=256 closed loop through the targets and ``TritonServer.stop()`` (what SIGTERM
   to ``tdeploy serve`` does); then again right after ``--factor`` x capacity for 10 s, with
   the overload still running. In-flight failures and shutdown time against the exit timeout.

``--chart-values values.yaml``: the shedder runs the configuration the Helm chart renders for
those values (blue's sidecar ConfigMap, ``helm template`` or Helm's engine through
helm-python-sdk), with only its ports mapped to this machine and the access-log lines added
(``runtime.shedder.retarget`` / ``with_access_log``): the cluster's overload bound, measured.

Targets: every ensemble in the repository (``--models`` to choose), inputs from the build's
golden cases. The load generator shares the machine with the server: on a small machine the
figures are noisy, and the summary prints the rate actually offered next to the one asked.
Writes ``overload.json`` and ``overload.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from rich.console import Console
from rich.table import Table

from triton_deploy.bench.load import InBackground, Load, Sample, Target, percentile
from triton_deploy.runtime.repository import read_config, read_repository
from triton_deploy.runtime.server import TritonServer
from triton_deploy.runtime.shedder import read_access_log, shedder_bounds

__all__ = ["Figure", "StopUnderLoad", "bounded_queues", "load_then_stop", "main", "server_rss_mb"]

console = Console()


@dataclass
class Figure:
    name: str
    measured: str
    goal: str
    passed: bool | None  # None: informational


@dataclass
class Phase:
    name: str
    start: float  # load-clock seconds
    end: float
    offered_rps: float = 0.0
    asked_rps: float = 0.0


@dataclass
class Report:
    capacity_rps: float = 0.0
    protection: str = ""
    normal_p99_built_ms: float = float("nan")
    normal_p99_ms: float = float("nan")
    overload_ok_p99_ms: float = float("nan")
    rejected_p99_ms: float = float("nan")
    rejected_max_ms: float = float("nan")
    rejected_p50_ms: float = float("nan")
    sender_late_p99_ms: float = float("nan")
    # the same figures where the request meets the server (the shedder's access log), free of
    # the load generator's own scheduling delays on a shared machine
    edge_normal_p99_ms: float = float("nan")
    edge_overload_ok_p99_ms: float = float("nan")
    edge_rejected_p99_ms: float = float("nan")
    edge_rejected_max_ms: float = float("nan")
    edge_rejected: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failure_examples: dict[str, int] = field(default_factory=dict)
    rss_before_mb: float = float("nan")
    rss_peak_mb: float = float("nan")
    recovery_s: float = float("nan")
    recovery_limit_ms: float = float("nan")
    executed_after_deadline: int = 0
    drain: list[dict[str, Any]] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    timeline: dict[str, list[float]] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)


# -- server side ---------------------------------------------------------------------------------
def bounded_queues(repository: Path, destination: Path, max_queue_size: int) -> Path:
    """A copy of ``repository`` where every dynamically batched model has a bounded queue.

    Only ``max_queue_size``: no default timeout and no per-request override, so Triton answers
    a request that finds the queue full at once ("Exceeds maximum queue size") and never
    rejects a request late for having waited.
    """
    shutil.copytree(repository, destination, symlinks=True)
    for path in destination.glob("*/config.pbtxt"):
        config = read_config(path)
        if config.HasField("dynamic_batching"):
            policy = config.dynamic_batching.default_queue_policy
            policy.max_queue_size = max_queue_size
            path.write_text(text_format.MessageToString(config))
    return destination


def server_rss_mb(pid: int) -> float:
    """Resident memory of tritonserver and its Python backend stubs, in MB."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0
        for process in [root, *root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 1e6
    except psutil.NoSuchProcess:
        return float("nan")


class RssSampler:
    """Samples the server's memory every ``period_s`` on a thread of its own."""

    def __init__(self, pid: int, clock: Load, period_s: float = 0.5) -> None:
        self.pid, self.clock, self.period_s = pid, clock, period_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.samples.append((self.clock.now(), server_rss_mb(self.pid)))


def _success_count(url: str, model: str) -> int:
    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(model).model_stats
        return sum(int(s.inference_stats.success.count) for s in stats)


# -- measurements ----------------------------------------------------------------------------------
def _ok_latencies_ms(samples: Sequence[Sample], start: float, end: float) -> list[float]:
    return [s.latency * 1e3 for s in samples if s.outcome == "ok" and start <= s.sent < end]


def _offered(samples: Sequence[Sample], start: float, end: float) -> float:
    n = sum(1 for s in samples if start <= s.sent < end)
    return n / max(end - start, 1e-9)


def _capacity(url: str, targets: list[Target], concurrency: int, seconds: float) -> float:
    with Load(url) as load:
        load.closed_loop(targets, concurrency=concurrency, seconds=2.0)  # warm-up
        begin = load.now()
        samples = load.closed_loop(targets, concurrency=concurrency, seconds=seconds)
        return sum(1 for s in samples if s.outcome == "ok") / (load.now() - begin)


def _normal_p99(
    url: str, targets: list[Target], rate: float, seconds: float, deadline: float
) -> float:
    with Load(url) as load:
        samples = load.open_loop(targets, rate=rate, seconds=seconds, deadline_s=deadline)
    return percentile([s.latency * 1e3 for s in samples if s.outcome == "ok"], 99)


def _overload_run(
    server: TritonServer,
    targets: list[Target],
    report: Report,
    *,
    normal_rate: float,
    overload_rate: float,
    seconds: float,
    recovery_seconds: float,
    normal_seconds: float,
    deadline: float,
) -> list[Sample]:
    samples: list[Sample] = []
    with Load(server.grpc_url) as load:
        assert server.pid is not None
        with RssSampler(server.pid, load) as rss:
            plan = [
                ("normal", normal_rate, normal_seconds),
                ("overload", overload_rate, seconds),
                ("recovery", normal_rate, recovery_seconds),
            ]
            before = {t.model: _success_count(server.grpc_url, t.model) for t in targets}
            log = server.shedder_access_log
            offsets: list[int] = []
            for name, rate, duration in plan:
                offsets.append(log.stat().st_size if log is not None else 0)
                start = load.now()
                console.print(f"  {name}: {rate:.0f} req/s for {duration:.0f} s")
                got = load.open_loop(targets, rate=rate, seconds=duration, deadline_s=deadline)
                samples += got
                report.phases.append(
                    Phase(
                        name, start, start + duration, _offered(got, start, start + duration), rate
                    )
                )
            after = {t.model: _success_count(server.grpc_url, t.model) for t in targets}
            if log is not None:
                time.sleep(0.5)  # the last answers' lines
                offsets.append(log.stat().st_size)
                _edge_figures(report, log, offsets)
        lateness = list(load.lateness)
        report.timeline["rss_t"] = [t for t, _ in rss.samples]
        report.timeline["rss_mb"] = [m for _, m in rss.samples]
    normal, overload, recovery = report.phases[-3:]
    report.normal_p99_ms = percentile(_ok_latencies_ms(samples, normal.start, normal.end), 99)
    report.overload_ok_p99_ms = percentile(
        _ok_latencies_ms(samples, overload.start, overload.end), 99
    )
    in_overload = [s for s in samples if overload.start <= s.sent < overload.end]
    rejected = [s.latency * 1e3 for s in in_overload if s.outcome == "rejected"]
    report.rejected_p99_ms = percentile(rejected, 99)
    report.rejected_p50_ms = percentile(rejected, 50)
    report.sender_late_p99_ms = 1e3 * percentile(
        [late for t, late in lateness if overload.start <= t < overload.end], 99
    )
    report.rejected_max_ms = max(rejected, default=float("nan"))
    report.outcomes = {
        o: sum(1 for s in in_overload if s.outcome == o)
        for o in ("ok", "rejected", "deadline", "refused", "failed")
    }
    failures = collections.Counter(s.detail[:160] for s in samples if s.outcome == "failed")
    report.failure_examples = dict(failures.most_common(5))
    rss_normal = [m for t, m in rss.samples if normal.start <= t < overload.start]
    rss_later = [m for t, m in rss.samples if t >= overload.start]
    report.rss_before_mb = float(np.median(rss_normal)) if rss_normal else float("nan")
    report.rss_peak_mb = max(rss_later, default=float("nan"))
    # executed by the server although the client had given up (deadline) on them
    client_ok = sum(1 for s in samples if s.outcome == "ok")
    report.executed_after_deadline = max(sum(after.values()) - sum(before.values()) - client_ok, 0)
    # recovery: the first second after the drop from which the p99 of everything sent until
    # the end of the phase is within 1.5x the normal-load p99 (pooled: one noisy second
    # on a shared machine does not decide it)
    limit = 1.5 * report.normal_p99_ms
    report.recovery_limit_ms = limit
    report.recovery_s = float("nan")
    for second in np.arange(recovery.start, recovery.end - 0.999, 1.0):
        if percentile(_ok_latencies_ms(samples, second, recovery.end), 99) <= limit:
            report.recovery_s = float(second - recovery.start)
            break
    _timeline(report, samples)
    return samples


def _edge_figures(report: Report, log: Path, offsets: list[int]) -> None:
    """Latencies from the shedder's access log, phase by phase (byte offsets of the log at
    each phase's start, and at the end)."""
    normal = read_access_log(log, offsets[0], offsets[1])
    overload = read_access_log(log, offsets[1], offsets[2])
    report.edge_normal_p99_ms = percentile([r.total_ms for r in normal if not r.shed], 99)
    report.edge_overload_ok_p99_ms = percentile([r.total_ms for r in overload if not r.shed], 99)
    rejected = [r.total_ms for r in overload if r.shed]
    report.edge_rejected = len(rejected)
    report.edge_rejected_p99_ms = percentile(rejected, 99)
    report.edge_rejected_max_ms = max(rejected, default=float("nan"))


def _timeline(report: Report, samples: Sequence[Sample]) -> None:
    end = max((s.sent for s in samples), default=0.0)
    edges = np.arange(0.0, end + 1.0, 1.0)
    sent = np.array([s.sent for s in samples])
    outcome = np.array([s.outcome for s in samples])
    latency = np.array([s.latency * 1e3 for s in samples])
    report.timeline["t"] = edges[:-1].tolist()
    for name in ("ok", "rejected", "deadline"):
        report.timeline[f"{name}_per_s"] = np.histogram(sent[outcome == name], edges)[0].tolist()
    p99 = []
    for lo, hi in itertools.pairwise(edges):
        window = latency[(sent >= lo) & (sent < hi) & (outcome == "ok")]
        p99.append(float(np.percentile(window, 99)) if len(window) else float("nan"))
    report.timeline["ok_p99_ms"] = p99


@dataclass
class StopUnderLoad:
    """What ``load_then_stop`` saw: every request, when the stop began, how it went."""

    samples: list[Sample]
    stopped_at: float  # load-clock seconds
    shutdown_s: float
    exit_code: int | None

    def before_stop(self) -> list[Sample]:
        return [s for s in self.samples if s.sent < self.stopped_at]

    def in_flight_failures(self) -> list[Sample]:
        """Requests sent before the stop began that the server took and did not answer.

        A request sent just before the stop may reach the server after the unload and be
        refused at the entry ("no available versions"): never taken, so not in flight
        (``loadgen.classify``); one shed by the load shedder was answered at once."""
        return [s for s in self.before_stop() if s.outcome in ("failed", "deadline")]


def load_then_stop(
    server: TritonServer,
    targets: list[Target],
    *,
    overload_rate: float | None,
    load_seconds: float = 5.0,
) -> StopUnderLoad:
    """c=256 closed loop (plus an open loop at ``overload_rate``, for twice as long) through
    the targets, then ``server.stop()``, what SIGTERM to ``tdeploy serve`` does."""
    done = threading.Event()
    with Load(server.grpc_url) as load:
        loops = [
            InBackground(
                load.closed_loop,
                targets=targets,
                concurrency=256,
                seconds=600,
                deadline_s=60,
                stop=done,
            )
        ]
        if overload_rate:
            loops.append(
                InBackground(
                    load.open_loop,
                    targets=targets,
                    rate=overload_rate,
                    seconds=600,
                    deadline_s=60,
                    stop=done,
                )
            )
        time.sleep(2 * load_seconds if overload_rate else load_seconds)
        stopped_at = load.now()
        began = time.monotonic()
        code = server.stop()
        took = time.monotonic() - began
        done.set()
        samples = [s for loop in loops for s in loop.result()]
    return StopUnderLoad(samples, stopped_at, took, code)


def _drain_run(
    server: TritonServer,
    targets: list[Target],
    *,
    overload_rate: float | None,
    load_seconds: float = 5.0,
) -> dict[str, Any]:
    run = load_then_stop(server, targets, overload_rate=overload_rate, load_seconds=load_seconds)
    before = run.before_stop()
    lost = run.in_flight_failures()
    drain = server.last_drain
    return {
        "after_overload": bool(overload_rate),
        "requests_before_stop": len(before),
        "ok_before_stop": sum(1 for s in before if s.outcome == "ok"),
        "rejected_before_stop": sum(1 for s in before if s.outcome == "rejected"),
        "in_flight_failures": len(lost),
        "failure_examples": sorted({s.detail for s in lost})[:5],
        "refused_after_stop": sum(1 for s in run.samples if s.outcome == "refused"),
        "shutdown_s": run.shutdown_s,
        "drain_s": drain.seconds if drain else float("nan"),
        "drain_complete": bool(drain and drain.complete),
        "exit_code": run.exit_code,
    }


# -- report ----------------------------------------------------------------------------------------
def _figures(report: Report, args: argparse.Namespace) -> list[Figure]:
    r = report
    overload = r.phases[-2] if len(r.phases) >= 2 else None
    offered = (
        f" (offered {overload.offered_rps:.0f} of {overload.asked_rps:.0f} req/s asked)"
        if overload
        else ""
    )
    growth = r.rss_peak_mb - r.rss_before_mb
    ratio = r.overload_ok_p99_ms / r.normal_p99_ms
    unharmed = r.normal_p99_ms / r.normal_p99_built_ms
    figures = [
        Figure(
            f"server RSS growth, {args.factor:g}x capacity for {args.seconds:g} s{offered}",
            f"{growth:+.0f} MB ({r.rss_before_mb:.0f} -> peak {r.rss_peak_mb:.0f} MB)",
            "<= 100 MB",
            growth <= 100,
        ),
        Figure(
            "rejections answered in, client view (p99; p50 / max)",
            f"{r.rejected_p99_ms:.1f} ms; {r.rejected_p50_ms:.1f} / {r.rejected_max_ms:.1f} ms "
            f"({r.outcomes.get('rejected', 0)} rejected)",
            "<= 10 ms",
            r.rejected_p99_ms <= 10,
        ),
        Figure(
            "accepted p99 under overload vs normal-load p99, client view",
            f"{r.overload_ok_p99_ms:.1f} vs {r.normal_p99_ms:.1f} ms ({ratio:.2f}x)",
            "<= 2x",
            ratio <= 2,
        ),
        Figure(
            "normal p99 back after the load drops",
            f"{r.recovery_s:.0f} s" if not math.isnan(r.recovery_s) else "not within the run",
            f"<= 5 s (p99 from then on <= 1.5x normal: {r.recovery_limit_ms:.0f} ms)",
            r.recovery_s <= 5,
        ),
        Figure(
            "normal-load p99 with the protection vs as built",
            f"{r.normal_p99_ms:.1f} vs {r.normal_p99_built_ms:.1f} ms ({unharmed:.2f}x)",
            "unharmed (<= 1.25x)",
            unharmed <= 1.25,
        ),
        Figure(
            "requests executed after their client gave up",
            f"{r.executed_after_deadline} (client deadlines: {r.outcomes.get('deadline', 0)})",
            "few (cancelled work is dropped)",
            None,
        ),
    ]
    if r.edge_rejected or not math.isnan(r.edge_normal_p99_ms):
        edge_ratio = r.edge_overload_ok_p99_ms / r.edge_normal_p99_ms
        figures += [
            Figure(
                "rejections answered in, at the server edge (HAProxy; p99 / max)",
                f"{r.edge_rejected_p99_ms:.0f} / {r.edge_rejected_max_ms:.0f} ms "
                f"({r.edge_rejected} rejected)",
                "<= 10 ms",
                r.edge_rejected_p99_ms <= 10,
            ),
            Figure(
                "accepted p99 under overload vs normal load, at the server edge",
                f"{r.edge_overload_ok_p99_ms:.0f} vs {r.edge_normal_p99_ms:.0f} ms "
                f"({edge_ratio:.2f}x)",
                "<= 2x",
                edge_ratio <= 2,
            ),
        ]
    figures.append(
        Figure(
            "load generator's own lateness during the overload (p99)",
            f"{r.sender_late_p99_ms:.1f} ms",
            "small (else the machine was too busy to trust the latencies)",
            None,
        )
    )
    for d in r.drain:
        label = "right after overload" if d["after_overload"] else "at c=256"
        figures.append(
            Figure(
                f"in-flight failures on SIGTERM {label}",
                f"{d['in_flight_failures']} of {d['requests_before_stop']} sent before it",
                "0",
                d["in_flight_failures"] == 0,
            )
        )
        figures.append(
            Figure(
                f"shutdown time {label}",
                f"{d['shutdown_s']:.1f} s (drain {d['drain_s']:.1f} s, exit code {d['exit_code']})",
                f"<= exit timeout {args.exit_timeout} s",
                d["shutdown_s"] <= args.exit_timeout and d["exit_code"] == 0,
            )
        )
    return figures


def plot(report: Report, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # matplotlib comes with the loadtest extra
        return None
    t = report.timeline
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    axes[0].plot(t["t"], t["ok_per_s"], label="answered")
    axes[0].plot(t["t"], t["rejected_per_s"], label="rejected (queue full)")
    axes[0].plot(t["t"], t["deadline_per_s"], label="client deadline passed")
    axes[0].set_ylabel("requests / s")
    axes[0].legend(loc="upper left")
    axes[1].plot(t["t"], t["ok_p99_ms"], color="tab:red", label="p99 of answered requests")
    axes[1].axhline(report.normal_p99_ms * 2, ls="--", color="grey", label="2x normal p99")
    axes[1].set_ylabel("ms")
    axes[1].set_yscale("log")
    axes[1].legend(loc="upper left")
    axes[2].plot(t["rss_t"], t["rss_mb"], color="tab:purple")
    axes[2].set_ylabel("server RSS (MB)")
    axes[2].set_xlabel("seconds")
    for ax in axes:
        for phase in report.phases:
            if phase.name == "overload":
                ax.axvspan(phase.start, phase.end, color="tab:orange", alpha=0.12)
    fig.suptitle(
        f"Overload {report.phases[-2].asked_rps:.0f} req/s vs capacity {report.capacity_rps:.0f} "
        f"req/s; {report.protection}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _print(report: Report) -> None:
    table = Table(title="Overload protection and drain (one run; noisy on a shared machine)")
    for column in ("figure", "measured", "goal", ""):
        table.add_column(column)
    for f in report.figures:
        verdict = "" if f.passed is None else ("[green]pass[/]" if f.passed else "[red]MISS[/]")
        table.add_row(f.name, f.measured, f.goal, verdict)
    console.print(table)


# -- the chart's sidecar configuration ---------------------------------------------------------------
# what a render needs besides the chart's defaults (the load shedder does not depend on them)
_REQUIRED_VALUES: dict[str, dict[str, Any]] = {
    "blue": {"modelRepository": {"uri": "s3://models/bench"}},
    "triton": {"restrictedProtocols": {"enabled": False}},
}


def chart_shedder_config(values: Path | None, color: str = "blue") -> str:
    """haproxy.cfg of ``color``'s load shedder as the Helm chart renders it for ``values``
    (None: the chart's defaults)."""
    import subprocess

    import yaml

    chart = Path(__file__).resolve().parents[3] / "charts" / "triton-deploy"
    if not chart.is_dir():
        raise SystemExit(f"--chart-values: the chart is not beside this package ({chart})")
    overrides = (yaml.safe_load(values.read_text()) or {}) if values else {}
    for key, value in _REQUIRED_VALUES.items():  # the user's values win
        overrides[key] = {**value, **overrides.get(key, {})}
    helm = shutil.which("helm")
    if helm is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as merged:
            merged.write(yaml.safe_dump(overrides))
            merged.flush()
            rendered = subprocess.run(
                [helm, "template", "bench", str(chart), "-f", merged.name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        texts = [rendered]
    else:  # Helm's own engine, as the tests use it (helm-python-sdk)
        import helm_python

        texts = list(helm_python.Chart.load(chart).render(overrides, name="bench").values())
    for text in texts:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError:  # NOTES.txt
            continue
        for doc in docs:
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "ConfigMap"
                and doc["metadata"]["name"].endswith(f"-{color}-shedder")
            ):
                return str(doc["data"]["haproxy.cfg"])
    raise SystemExit(
        f"--chart-values: the chart renders no load shedder for {color} (overload.enabled?)"
    )


# -- repeated runs -------------------------------------------------------------------------------
#: (label, how to read it from one run's overload.json, unit) of each summarized figure
SUMMARY_FIGURES: list[tuple[str, Any, str]] = [
    ("capacity (closed loop)", lambda r: r["capacity_rps"], "req/s"),
    ("normal-load p99 as built", lambda r: r["normal_p99_built_ms"], "ms"),
    ("rejections at the server edge, p99", lambda r: r["edge_rejected_p99_ms"], "ms"),
    ("rejections at the server edge, max", lambda r: r["edge_rejected_max_ms"], "ms"),
    (
        "accepted p99 under overload / normal load, at the edge",
        lambda r: r["edge_overload_ok_p99_ms"] / r["edge_normal_p99_ms"],
        "x",
    ),
    ("... the same, client view", lambda r: r["overload_ok_p99_ms"] / r["normal_p99_ms"], "x"),
    ("requests served per second during the overload", lambda r: _served_rps(r), "req/s"),
    ("server RSS growth during the overload", lambda r: r["rss_peak_mb"] - r["rss_before_mb"], "MB"),
    ("normal p99 back after the load drops", lambda r: r["recovery_s"], "s"),
    ("in-flight failures on SIGTERM (both stops)", lambda r: sum(d["in_flight_failures"] for d in r["drain"]), ""),
    ("load generator's own lateness (p99)", lambda r: r["sender_late_p99_ms"], "ms"),
]  # fmt: skip


def _served_rps(run: dict[str, Any]) -> float:
    """Answers per second during the overload phase (the timeline's 1 s windows inside it)."""
    overload = next(p for p in run["phases"] if p["name"] == "overload")
    timeline = run["timeline"]
    inside = [
        ok
        for t, ok in zip(timeline["t"], timeline["ok_per_s"], strict=True)
        if overload["start"] <= t < overload["end"]
    ]
    return float(np.mean(inside)) if inside else float("nan")


def summarize(paths: Sequence[Path]) -> Table:
    """Median (min–max) of each figure over repeated runs, one column per protection setting
    (runs grouped by their ``protection`` line)."""
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for path in paths:
        run = json.loads(path.read_text())
        groups[run["protection"]].append(run)
    table = Table(title=f"Overload benchmark: median (min–max) of {len(paths)} runs")
    table.add_column("figure")
    for protection, runs in groups.items():
        table.add_column(f"{protection} ({len(runs)} run{'s' if len(runs) != 1 else ''})")
    for label, read, unit in SUMMARY_FIGURES:
        cells = []
        for runs in groups.values():
            values = sorted(float(read(r)) for r in runs)
            median = float(np.median(values))
            digits = 2 if unit == "x" else 0 if median >= 10 or not unit else 1
            spread = (
                f" ({values[0]:,.{digits}f}–{values[-1]:,.{digits}f})" if len(values) > 1 else ""
            )
            cells.append(f"{median:,.{digits}f}{spread} {unit}".rstrip())
        table.add_row(label, *cells)
    return table


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdeploy bench overload", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--models", nargs="*", help="targets (default: every ensemble)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the overload")
    parser.add_argument("--factor", type=float, default=1.5, help="overload, x capacity")
    parser.add_argument("--normal", type=float, default=0.5, help="normal load, x capacity")
    parser.add_argument("--recovery-seconds", type=float, default=15.0)
    parser.add_argument("--normal-seconds", type=float, default=15.0, help="each normal phase")
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="load before each stop (twice as long for the one after overload)",
    )
    parser.add_argument("--deadline-ms", type=float, default=1000.0, help="client deadline")
    parser.add_argument(
        "--mechanism",
        choices=("shedder", "queue-policy"),
        default="shedder",
        help="shedder: HAProxy in front of gRPC (runtime.shedder); queue-policy: Triton's "
        "max_queue_size on every batched model (shows the 2.51 batcher stall)",
    )
    parser.add_argument("--max-inflight", type=int, default=32, help="shedder: in Triton")
    parser.add_argument("--max-queued", type=int, default=32, help="shedder: queued in HAProxy")
    parser.add_argument(
        "--chart-values",
        type=Path,
        nargs="?",
        const=Path(),
        help="shedder: run the Helm chart's sidecar configuration for these values (none: "
        "the chart's defaults); its overload.maxInflight / maxQueued replace --max-inflight "
        "/ --max-queued",
    )
    parser.add_argument(
        "--max-queue-size",
        type=int,
        default=0,
        help="queue-policy: bound per model (default: capacity x 20 ms, at least 8)",
    )
    parser.add_argument("--rows", type=int, default=8, help="rows per request")
    parser.add_argument("--capacity-concurrency", type=int, default=256)
    parser.add_argument("--exit-timeout", type=int, default=30)
    parser.add_argument("--no-drain", action="store_true", help="skip the drain measurements")
    parser.add_argument("--out", type=Path, default=Path("reports/overload"))
    parser.add_argument(
        "--summarize",
        type=Path,
        nargs="+",
        metavar="OVERLOAD_JSON",
        help="measure nothing: print the median (min–max) of the headline figures over these "
        "runs' overload.json files, one column per protection setting",
    )
    args = parser.parse_args(argv)
    if args.summarize:
        Console(width=max(console.width, 140)).print(summarize(args.summarize))
        return 0

    repository = args.repository.resolve()
    models = read_repository(repository)
    report = Report()
    deadline = args.deadline_ms / 1e3

    def targets_for(server: TritonServer) -> list[Target]:
        return [
            Target.from_repository(repository, m, server.grpc_url, rows_per_request=args.rows)
            for m in names
        ]

    with tempfile.TemporaryDirectory(prefix="tdeploy-overload-") as tmp:
        console.print(f"[bold]as built[/]: {repository}")
        with TritonServer(repository, exit_timeout_s=args.exit_timeout) as server:
            names = (
                args.models
                or [m for m in server.loaded if models[m].kind == "ensemble"]
                or server.loaded
            )
            targets = targets_for(server)
            console.print(f"  targets: {', '.join(names)}, {args.rows} rows per request")
            report.capacity_rps = _capacity(
                server.grpc_url, targets, args.capacity_concurrency, args.capacity_seconds
            )
            console.print(f"  capacity: {report.capacity_rps:.0f} req/s")
            normal_rate = args.normal * report.capacity_rps
            report.normal_p99_built_ms = _normal_p99(
                server.grpc_url, targets, normal_rate, args.normal_seconds, deadline
            )
            console.print(f"  normal-load p99: {report.normal_p99_built_ms:.1f} ms")

        serve_repository, max_inflight, max_queued = repository, None, None
        shedder_config = None
        if args.mechanism == "shedder":
            max_inflight, max_queued = args.max_inflight, args.max_queued
            if args.chart_values is not None:
                given = args.chart_values if args.chart_values != Path() else None
                shedder_config = chart_shedder_config(given)
                max_inflight, max_queued = shedder_bounds(shedder_config)
            report.protection = f"load shedder: {max_inflight} in flight, {max_queued} queued" + (
                " (the Helm chart's sidecar config)" if shedder_config else ""
            )
        else:
            size = args.max_queue_size or max(8, math.ceil(report.capacity_rps * 0.02))
            serve_repository = bounded_queues(repository, Path(tmp) / "repository", size)
            report.protection = f"Triton queue policy: max_queue_size {size} per model"
        console.print(f"[bold]protected[/]: {report.protection}")

        access_log = Path(tmp) / "shedder-access.log" if max_inflight else None

        def start() -> TritonServer:
            return TritonServer(
                serve_repository,
                exit_timeout_s=args.exit_timeout,
                max_inflight=max_inflight,
                max_queued=max_queued,
                shedder_access_log=access_log,
                shedder_config=shedder_config,
            ).start()

        server = start()
        targets = targets_for(server)
        _overload_run(
            server,
            targets,
            report,
            normal_rate=normal_rate,
            overload_rate=args.factor * report.capacity_rps,
            seconds=args.seconds,
            recovery_seconds=args.recovery_seconds,
            normal_seconds=args.normal_seconds,
            deadline=deadline,
        )
        if args.no_drain:
            server.stop()
        else:
            console.print("[bold]drain[/]: c=256, then stop")
            report.drain.append(
                _drain_run(server, targets, overload_rate=None, load_seconds=args.drain_seconds)
            )
            server = start()
            console.print(
                f"[bold]drain[/]: c=256 + {args.factor:g}x capacity for "
                f"{2 * args.drain_seconds:g} s, then stop"
            )
            report.drain.append(
                _drain_run(
                    server,
                    targets,
                    overload_rate=args.factor * report.capacity_rps,
                    load_seconds=args.drain_seconds,
                )
            )
    report.figures = _figures(report, args)
    _print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overload.json").write_text(json.dumps(asdict(report), indent=2, default=str))
    png = plot(report, args.out / "overload.png")
    console.print(f"wrote {args.out / 'overload.json'}" + (f" and {png}" if png else ""))
    return 0
