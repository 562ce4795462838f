"""``tdeploy bench``: one run that measures every model the same way, next to its alternatives.

For each model (and ensemble) of the repository, on the real local tritonserver:

1. a concurrency sweep of single-sample requests with our generator and with perf_analyzer:
   throughput, p50/p95/p99, the server's queue and compute times and the batch sizes it formed
   (Triton's statistics API), the server's and the generator's CPU;
2. the same sweep with dynamic batching off (same server binary, configs without
   ``dynamic_batching``);
3. the model in-process at the batch sizes the server formed (the hardware's ceiling);
4. the naive FastAPI service, MLServer and BentoML (where they can serve the model);
5. MLPerf's scenarios: SingleStream (p90 at concurrency 1), Server (Poisson arrivals: the
   highest rate whose p99 stays under a bound), Offline (samples/s with client batches).

With ``runs`` > 1 every measurement of steps 1-4 is repeated, the servers staying up, in
alternating order (on, off, peers, then the reverse), so that a drifting machine hits every
variant alike; each point carries its run, and goals are the median over runs with min-max.
Every point says its protocol (gRPC, HTTP/JSON), its predictor and its server's settings:
Triton over HTTP (with the HTTP guard, as ``tdeploy serve`` runs it) is measured for the
comparison with BentoML (HTTP), Triton over gRPC for MLServer (gRPC); "same predictor" is
Triton with XGBoost's stock call, the one the peers use. The peers' worker settings are chosen
by a short sweep at the start of the run (MLServer parallel_workers, BentoML workers), and
each peer writes the rows of every call it runs, so the report shows that it batched.

Everything is a ``BenchReport`` (JSON-able dataclasses); ``report`` renders it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.bench import perf_analyzer as pa
from triton_deploy.bench.inprocess import (
    load_in_process,
    measure_ceiling,
    measure_latency,
)
from triton_deploy.bench.loadgen import (
    GrpcTransport,
    HttpTransport,
    LoadResult,
    Transport,
    closed_loop,
    open_loop,
)
from triton_deploy.bench.payloads import (
    BenchError,
    ModelInfo,
    grpc_requests,
    json_bodies,
    model_info,
    sample_rows,
)
from triton_deploy.bench.services import (
    ManagedProcess,
    batch_log,
    bentoml_service,
    mlserver_service,
    naive_service,
    unsupported_reason,
)
from triton_deploy.bench.stats import StageTimes, delta, snapshot
from triton_deploy.bench.variants import batching_off, with_queue_policy
from triton_deploy.runtime.server import TritonServer

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BenchOptions",
    "BenchReport",
    "ModelReport",
    "Point",
    "run_bench",
]

DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32, 64)
GRPC = "gRPC"
HTTP = "HTTP/JSON"
#: Requests of ``offline_batch`` rows in flight in the Offline scenario (the best one counts).
OFFLINE_CONCURRENCY = (2, 4, 8)
TRITON = "triton"
TRITON_OFF = "triton, batching off"
TRITON_HTTP = "triton, HTTP"
TRITON_STOCK = "triton, stock XGBoost call"
NAIVE = "naive FastAPI"
MLSERVER = "MLServer"
BENTOML = "BentoML"
OURS = "tdeploy"
PERF_ANALYZER = "perf_analyzer"


@dataclass
class Point:
    """One measurement: a server variant, a load generator, a concurrency (or a rate)."""

    variant: str
    generator: str
    concurrency: int
    batch: int
    throughput: float  # requests/s
    samples_per_s: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    errors: int = 0
    client_cpu: float = 0.0  # cores the load generator used
    server_cpu: float | None = None  # cores the server's process tree used
    requests: int = 0
    stages: list[StageTimes] = field(default_factory=list)  # the model, then its members
    request_rate: float | None = None  # open loop: the offered rate
    error: str | None = None
    # CPU per request by process (server, each backend stub, the load generator), in us
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)
    run: int = 0  # which of the repeated runs
    protocol: str = GRPC
    predictor: str = ""  # what computes the model (e.g. "xgboost C API", "onnxruntime")
    settings: str = ""  # the server's worker / batching settings that matter here

    @property
    def avg_batch(self) -> float:
        """Batch size the server formed (an ensemble's: its largest member's)."""
        batches = [s.avg_batch for s in self.stages if s.executions]
        return max(batches) if batches else 0.0


@dataclass
class ModelReport:
    model: str
    kind: str
    inputs_from: str
    max_batch_size: int
    dynamic_batching: bool
    points: list[Point] = field(default_factory=list)
    ceiling: dict[int, float] = field(default_factory=dict)  # batch -> samples/s in-process
    in_process_latency_ms: dict[str, float] = field(default_factory=dict)  # batch 1
    in_process_framework: str | None = None
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # what was not measured, and why

    # per run: batch -> samples/s in-process, and the single-row latency percentiles
    ceiling_runs: list[dict[int, float]] = field(default_factory=list)
    in_process_latency_runs: list[dict[str, float]] = field(default_factory=list)
    # the peers' settings tried before the runs: {"server", "settings", "throughput", ...}
    peer_sweep: list[dict[str, Any]] = field(default_factory=list)

    def find(
        self, variant: str, generator: str, concurrency: int, batch: int = 1, run: int | None = None
    ) -> Point | None:
        for p in self.points:
            if (
                (p.variant, p.generator, p.concurrency, p.batch)
                == (variant, generator, concurrency, batch)
                and p.request_rate is None
                and (run is None or p.run == run)
            ):
                return p
        return None

    def find_runs(
        self, variant: str, generator: str, concurrency: int, batch: int = 1
    ) -> dict[int, Point]:
        """The point of every run (run -> point)."""
        return {
            p.run: p
            for p in self.points
            if (p.variant, p.generator, p.concurrency, p.batch)
            == (variant, generator, concurrency, batch)
            and p.request_rate is None
        }


@dataclass
class BenchReport:
    repository: str
    concurrency: list[int]
    seconds: float
    started: str
    machine: dict[str, Any]
    models: list[ModelReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def model(self, name: str) -> ModelReport | None:
        return next((m for m in self.models if m.model == name), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchOptions:
    repository: Path
    models: list[str]
    concurrency: list[int] = field(default_factory=lambda: list(DEFAULT_CONCURRENCY))
    seconds: float = 3.0
    warmup_s: float = 0.5
    batching_off: bool = True
    perf_analyzer: bool = True
    ceiling: bool = True
    naive: bool = True
    alternatives: bool = True
    scenarios: bool = True
    offline_batch: int = 64
    server_p99_ms: float = 10.0
    queue_policy: bool = False
    runs: int = 1
    http_triton: bool = True  # Triton over HTTP too (the like-for-like row for BentoML)
    same_predictor: bool = True  # Triton with XGBoost's stock call (tree models)
    mlserver_workers: tuple[int, ...] = (0, 1, 2)  # parallel_workers tried
    bentoml_workers: tuple[int, ...] = (1, 2)
    compare_concurrency: int | None = None  # where peers are compared (default: the highest)


# ------------------------------------------------------------------------------------------------
def _process_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds so far of a server's process tree, by process: the server itself, and each
    Python backend stub by its model instance name (e.g. ``my_model_0_0``)."""
    import psutil

    out: dict[str, float] = {}
    if not pid:
        return out
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            args = proc.cmdline()
            stub = len(args) > 8 and args[0].endswith("triton_python_backend_stub")
            name = f"stub {args[8]}" if stub else ("server" if proc.pid == pid else proc.name())
            out[name] = out.get(name, 0.0) + times.user + times.system
    return out


def _tree_cpu(pid: int | None) -> float:
    return sum(_process_cpu(pid).values())


def _cpu_split(
    before: dict[str, float], after: dict[str, float], requests: int
) -> dict[str, float]:
    """Microseconds of CPU per request, by process (only those that did work)."""
    if requests <= 0:
        return {}
    split = {name: (after[name] - before.get(name, 0.0)) / requests * 1e6 for name in after}
    return {name: round(us, 1) for name, us in split.items() if us >= 1.0}


def _point(
    variant: str,
    generator: str,
    concurrency: int,
    batch: int,
    result: LoadResult,
    server_cpu: float | None,
    stages: list[StageTimes],
) -> Point:
    return Point(
        variant=variant,
        generator=generator,
        concurrency=concurrency,
        batch=batch,
        throughput=result.throughput,
        samples_per_s=result.samples_per_s,
        p50_ms=result.percentile(50),
        p90_ms=result.percentile(90),
        p95_ms=result.percentile(95),
        p99_ms=result.percentile(99),
        errors=result.errors,
        client_cpu=result.client_cpu,
        server_cpu=server_cpu,
        requests=result.requests,
        stages=stages,
        request_rate=result.offered_rate,
        error=result.first_error,
    )


def _pa_point(variant: str, result: pa.PerfAnalyzerResult) -> Point:
    stage = StageTimes(
        model="(perf_analyzer)",
        queue_us=result.queue_us,
        compute_input_us=result.compute_input_us,
        compute_infer_us=result.compute_infer_us,
        compute_output_us=result.compute_output_us,
    )
    return Point(
        variant=variant,
        generator=PERF_ANALYZER,
        concurrency=result.concurrency or 0,
        batch=result.batch,
        throughput=result.throughput,
        samples_per_s=result.samples_per_s,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p95_ms=result.p95_ms,
        p99_ms=result.p99_ms,
        client_cpu=result.client_cpu,
        stages=[stage],
        request_rate=result.request_rate,
    )


def _predictor(info: ModelInfo, variant: str) -> str:
    """What computes the model in ``variant`` (the same-predictor row separates server from it)."""
    if info.kind == "fil":
        parameters = {k: v.string_value for k, v in info.config.parameters.items()}
        if parameters.get("model_type", "xgboost") == "lightgbm":
            return "lightgbm Booster.predict"
        if variant in (TRITON, TRITON_OFF, TRITON_HTTP, NAIVE):
            return "xgboost C API (XGBoosterPredictFromDense)"
        if variant == MLSERVER:
            return "xgboost, MLServer's runtime"
        return "xgboost inplace_predict"
    if info.kind in ("onnxruntime_onnx", "onnxruntime"):
        return "onnxruntime"
    return info.kind


def _triton_settings(info: ModelInfo, variant: str) -> str:
    """The server settings behind a Triton row: batching as configured, or none."""
    groups = info.config.instance_group
    instances = f"{groups[0].count or 1} instance(s)" if groups else "1 instance"
    if variant == TRITON_OFF or not info.dynamic_batching:
        return f"no dynamic batching, {instances}"
    delay = info.config.dynamic_batching.max_queue_delay_microseconds
    return f"dynamic batching, delay {delay} us, {instances}"


def _uses_xgboost(info: ModelInfo) -> bool:
    parameters = {k: v.string_value for k, v in info.config.parameters.items()}
    return info.kind == "fil" and parameters.get("model_type", "xgboost").startswith("xgboost")


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Variables in this process's environment while a server starts (it inherits them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _log_offset(path: Path | None) -> int:
    return path.stat().st_size if path is not None and path.exists() else 0


def _logged_batches(path: Path | None, offset: int, name: str) -> list[StageTimes]:
    """The rows of each call a peer logged since ``offset``: its formed batches."""
    if path is None or not path.exists():
        return []
    with path.open() as log:
        log.seek(offset)
        rows = [int(line) for line in log.read().split() if line.strip().isdigit()]
    if not rows:
        return []
    sizes: dict[int, int] = {}
    for r in rows:
        sizes[r] = sizes.get(r, 0) + 1
    return [
        StageTimes(
            f"{name} (its own log)",
            requests=0,
            inferences=sum(rows),
            executions=len(rows),
            batch_sizes=dict(sorted(sizes.items())),
        )
    ]


def triton_json_bodies(info: ModelInfo, rows: dict[str, np.ndarray]) -> list[bytes]:
    """KServe V2 JSON bodies for Triton's HTTP endpoint, one sample each."""
    import json

    bodies = []
    n = len(next(iter(rows.values())))
    for i in range(min(64, n)):
        tensors = []
        for t in info.inputs:
            value = rows[t.name][i : i + 1] if info.max_batch_size > 0 else rows[t.name]
            data = (
                [v.decode() if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
                if value.dtype == object
                else value.reshape(-1).tolist()
            )
            tensors.append(
                {"name": t.name, "shape": list(value.shape), "datatype": t.datatype, "data": data}
            )
        bodies.append(json.dumps({"inputs": tensors}).encode())
    return bodies


class _Runner:
    def __init__(self, options: BenchOptions, advance: Callable[[str], None]) -> None:
        self.options = options
        self.advance = advance
        self.repository = Path(options.repository).resolve()
        self.infos = {name: model_info(self.repository, name) for name in options.models}
        self.rows: dict[str, dict[str, np.ndarray]] = {}
        self.reports: dict[str, ModelReport] = {}
        self.inputs_dir = tempfile.TemporaryDirectory(prefix="tdeploy-bench-")
        for name, info in self.infos.items():
            rows, source = sample_rows(self.repository, info)
            self.rows[name] = rows
            self.reports[name] = ModelReport(
                name, info.kind, source, info.max_batch_size, info.dynamic_batching
            )
        self.pa_ok = options.perf_analyzer and pa.available()
        self.warnings: list[str] = []
        self.compare_at = options.compare_concurrency or max(options.concurrency)
        self.run = 0

    # -- steps -----------------------------------------------------------------------------------
    def batch_for(self, info: ModelInfo) -> int:
        return max(1, min(self.options.offline_batch, info.max_batch_size))

    def measure_grpc(
        self,
        server_url: str,
        server_pid: int | None,
        info: ModelInfo,
        variant: str,
        *,
        concurrency: int,
        batch: int = 1,
        rate: float | None = None,
        seconds: float | None = None,
        stats: bool = True,
        settings: str = "",
        batch_log: Path | None = None,
    ) -> Point:
        payloads = grpc_requests(info, self.rows[info.name], batch=batch)
        watched = [info.name, *info.members]
        seconds = seconds or self.options.seconds
        transport = GrpcTransport(server_url, channels=max(1, concurrency // 16))
        before = snapshot(server_url) if stats else {}
        offset = _log_offset(batch_log)
        split0 = _process_cpu(server_pid)
        cpu0, wall0 = sum(split0.values()), time.perf_counter()
        if rate is None:
            result = closed_loop(
                transport,
                payloads,
                concurrency=concurrency,
                seconds=seconds,
                warmup_s=self.options.warmup_s,
                samples_per_request=batch,
            )
        else:
            result = open_loop(
                transport,
                payloads,
                rate=rate,
                seconds=seconds,
                warmup_s=self.options.warmup_s,
                samples_per_request=batch,
            )
        split1 = _process_cpu(server_pid)
        server_cpu = (sum(split1.values()) - cpu0) / (time.perf_counter() - wall0)
        stages = [delta(before, snapshot(server_url), m) for m in watched] if stats else []
        stages += _logged_batches(batch_log, offset, variant)
        point = _point(variant, OURS, concurrency, batch, result, server_cpu, stages)
        point.run, point.protocol, point.settings = self.run, GRPC, settings
        point.predictor = _predictor(info, variant)
        # the whole run's requests, warm-up included, went through the server's processes
        served = round((result.wall_s + self.options.warmup_s) * result.throughput)
        point.cpu_us_per_request = _cpu_split(split0, split1, served)
        point.cpu_us_per_request["load generator"] = round(
            result.client_cpu / result.throughput * 1e6 if result.throughput else 0.0, 1
        )
        return point

    def measure_http(
        self,
        url: str,
        pid: int | None,
        info: ModelInfo,
        variant: str,
        bodies: list[bytes],
        concurrency: int,
        *,
        settings: str = "",
        batch_log: Path | None = None,
        stats_url: str | None = None,
        seconds: float | None = None,
    ) -> Point:
        transport: Transport = HttpTransport(url, limit=max(concurrency, 1))
        before = snapshot(stats_url) if stats_url else {}
        offset = _log_offset(batch_log)
        cpu0, wall0 = _tree_cpu(pid), time.perf_counter()
        result = closed_loop(
            transport,
            bodies,
            concurrency=concurrency,
            seconds=seconds or self.options.seconds,
            warmup_s=self.options.warmup_s,
        )
        server_cpu = (_tree_cpu(pid) - cpu0) / (time.perf_counter() - wall0)
        stages = (
            [delta(before, snapshot(stats_url), m) for m in [info.name, *info.members]]
            if stats_url
            else []
        )
        stages += _logged_batches(batch_log, offset, variant)
        point = _point(variant, OURS, concurrency, 1, result, server_cpu, stages)
        point.run, point.protocol, point.settings = self.run, HTTP, settings
        point.predictor = _predictor(info, variant)
        return point

    def sweep_triton(
        self,
        server: TritonServer,
        variant: str,
        *,
        levels: list[int] | None = None,
        perf_analyzer: bool = True,
        names: list[str] | None = None,
    ) -> None:
        levels = levels or list(self.options.concurrency)
        for name in names or list(self.infos):
            info = self.infos[name]
            report = self.reports[name]
            for concurrency in levels:
                self.advance(f"{name}: {variant}, c={concurrency}, run {self.run + 1}")
                report.points.append(
                    self.measure_grpc(
                        server.grpc_url,
                        server.pid,
                        info,
                        variant,
                        concurrency=concurrency,
                        settings=_triton_settings(info, variant),
                    )
                )
            if not (self.pa_ok and perf_analyzer):
                continue
            data = Path(self.inputs_dir.name) / f"{name}.json"
            if not data.exists():
                pa.write_input_data(info, self.rows[name], data)
            for concurrency in levels:
                self.advance(
                    f"{name}: {variant}, perf_analyzer c={concurrency}, run {self.run + 1}"
                )
                try:
                    cpu0, wall0 = _tree_cpu(server.pid), time.perf_counter()
                    result = pa.run_perf_analyzer(
                        server.grpc_url,
                        info,
                        data,
                        concurrency=concurrency,
                        seconds=self.options.seconds,
                    )
                    point = _pa_point(variant, result)
                    point.run, point.predictor = self.run, _predictor(info, variant)
                    point.settings = _triton_settings(info, variant)
                    # perf_analyzer's own start-up and stabilisation windows are in the wall
                    # time too: the server's share is a lower bound, good enough for a profile
                    point.server_cpu = (_tree_cpu(server.pid) - cpu0) / (
                        time.perf_counter() - wall0
                    )
                    report.points.append(point)
                except BenchError as exc:
                    report.skipped[f"{variant}, perf_analyzer c={concurrency}"] = str(exc)

    def sweep_triton_http(self, server: TritonServer, names: list[str]) -> None:
        """Triton over HTTP/JSON (through the HTTP guard) at the comparison level: the
        like-for-like row for the HTTP peers."""
        for name in names:
            info = self.infos[name]
            self.advance(f"{name}: {TRITON_HTTP}, run {self.run + 1}")
            url = f"{server.http_url}/v2/models/{name}/infer"
            self.reports[name].points.append(
                self.measure_http(
                    url,
                    server.pid,
                    info,
                    TRITON_HTTP,
                    triton_json_bodies(info, self.rows[name]),
                    self.compare_at,
                    settings=_triton_settings(info, TRITON) + ", HTTP guard on",
                    stats_url=server.grpc_url,
                )
            )

    def offline(self, server: TritonServer) -> None:
        """Client batches of ``offline_batch`` rows, 2, 4 or 8 in flight (every run)."""
        for name, info in self.infos.items():
            if info.max_batch_size <= 1:
                continue
            self.advance(f"{name}: client batches, run {self.run + 1}")
            batch = self.batch_for(info)
            self.reports[name].points.extend(
                self.measure_grpc(
                    server.grpc_url, server.pid, info, TRITON, concurrency=c, batch=batch
                )
                for c in OFFLINE_CONCURRENCY
            )

    def scenarios(self, server: TritonServer) -> None:
        for name, info in self.infos.items():
            report = self.reports[name]
            self.advance(f"{name}: SingleStream")
            single = report.find(TRITON, OURS, 1) or self.measure_grpc(
                server.grpc_url, server.pid, info, TRITON, concurrency=1
            )
            report.scenarios["SingleStream"] = {
                "p90_ms": single.p90_ms,
                "p50_ms": single.p50_ms,
                "samples_per_s": single.samples_per_s,
                "generator": OURS,
            }
            self.advance(f"{name}: Offline")
            # Offline: any batching, any number in flight. Client batches, a few concurrencies
            # (the dynamic batcher may merge them further); the best one is the result.
            batch = self.batch_for(info)
            tries = [
                p
                for p in report.points
                if p.variant == TRITON and p.generator == OURS and p.batch == batch > 1
            ] or [
                self.measure_grpc(
                    server.grpc_url, server.pid, info, TRITON, concurrency=c, batch=batch
                )
                for c in OFFLINE_CONCURRENCY
            ]
            if not any(p in report.points for p in tries):
                report.points.extend(tries)
            offline = max(tries, key=lambda p: p.samples_per_s)
            report.scenarios["Offline"] = {
                "samples_per_s": offline.samples_per_s,
                "batch": batch,
                "concurrency": offline.concurrency,
                "p99_ms": offline.p99_ms,
                "generator": OURS,
            }
            if self.pa_ok:
                data = Path(self.inputs_dir.name) / f"{name}.json"
                if not data.exists():
                    pa.write_input_data(info, self.rows[name], data)
                try:
                    result = pa.run_perf_analyzer(
                        server.grpc_url,
                        info,
                        data,
                        concurrency=offline.concurrency,
                        batch=batch,
                        seconds=self.options.seconds,
                    )
                    report.points.append(_pa_point(TRITON, result))
                    report.scenarios["Offline"]["perf_analyzer_samples_per_s"] = (
                        result.samples_per_s
                    )
                except BenchError as exc:
                    report.skipped["Offline, perf_analyzer"] = str(exc)
            self.advance(f"{name}: Server (Poisson)")
            report.scenarios["Server"] = self.server_scenario(server, info, report)

    def server_scenario(
        self, server: TritonServer, info: ModelInfo, report: ModelReport
    ) -> dict[str, Any]:
        """Highest Poisson rate whose p99 stays under the bound (MLPerf's Server scenario).

        First a low rate (a tenth of the best closed-loop throughput); if that meets the bound,
        four bisection steps between the highest rate that met it and 1.2x that throughput.
        """
        bound = self.options.server_p99_ms
        closed = [
            p.throughput
            for p in report.points
            if p.variant == TRITON and p.generator == OURS and p.batch == 1
        ]
        peak = 1.2 * max(closed, default=1000.0)
        seconds = max(1.0, self.options.seconds * 0.75)
        tried: list[dict[str, Any]] = []
        best: Point | None = None
        low, high, rate = 0.0, peak, peak / 12
        for _ in range(5):
            point = self.measure_grpc(
                server.grpc_url,
                server.pid,
                info,
                TRITON,
                concurrency=0,
                rate=rate,
                seconds=seconds,
                stats=False,
            )
            ok = point.errors == 0 and point.p99_ms <= bound and point.throughput >= 0.9 * rate
            tried.append(
                {"rate": rate, "p99_ms": point.p99_ms, "achieved": point.throughput, "ok": ok}
            )
            if ok:
                low, best = rate, point
            else:
                high = rate
            if best is None:
                break  # even a tenth of the peak misses the bound: the answer is below it
            rate = (low + high) / 2
        return {
            "p99_bound_ms": bound,
            "max_qps": low,
            "p99_ms": best.p99_ms if best else None,
            "tried": tried,
            "generator": OURS,
        }

    def in_process(self) -> None:
        """The model in this process at the batch sizes Triton formed in this run (and at 1
        and the client batch): the ceiling each served point is divided by."""
        for name, info in self.infos.items():
            report = self.reports[name]
            self.advance(f"{name}: in-process ceiling, run {self.run + 1}")
            try:
                model = load_in_process(info)
            except (BenchError, ImportError) as exc:
                report.skipped["in-process ceiling"] = str(exc)
                continue
            report.in_process_framework = model.framework
            batches = {1, self.batch_for(info)}
            batches |= {
                max(1, round(p.avg_batch))
                for p in report.points
                if p.variant == TRITON and p.generator == OURS and p.run == self.run
            }
            ceiling = {
                batch: measure_ceiling(
                    model, self.rows[name], batch, seconds=min(1.0, self.options.seconds)
                )
                for batch in sorted(batches)
            }
            report.ceiling_runs.append(ceiling)
            report.in_process_latency_runs.append(
                measure_latency(model, self.rows[name], seconds=min(1.0, self.options.seconds))
            )
            del model
            # the report's single figures: the median over runs
            for batch in {b for c in report.ceiling_runs for b in c}:
                values = [c[batch] for c in report.ceiling_runs if batch in c]
                report.ceiling[batch] = float(np.median(values))
            report.in_process_latency_ms = {
                key: float(np.median([r[key] for r in report.in_process_latency_runs]))
                for key in report.in_process_latency_runs[0]
            }

    def naive_services(self, stack: contextlib.ExitStack) -> dict[str, ManagedProcess]:
        services = {}
        for name, info in self.infos.items():
            report = self.reports[name]
            try:
                load_in_process(info)
                import fastapi  # noqa: F401
                import uvicorn  # noqa: F401
            except (BenchError, ImportError) as exc:
                report.skipped[NAIVE] = str(exc)
                continue
            try:
                services[name] = stack.enter_context(naive_service(self.repository, info))
            except BenchError as exc:
                report.skipped[NAIVE] = str(exc)
        return services

    def measure_naive(self, services: dict[str, ManagedProcess]) -> None:
        for name, service in services.items():
            info = self.infos[name]
            bodies = json_bodies(info, self.rows[name])
            for concurrency in self.options.concurrency:
                self.advance(f"{name}: naive c={concurrency}, run {self.run + 1}")
                point = self.measure_http(
                    service.url, service.pid, info, NAIVE, bodies, concurrency, settings="1 worker"
                )
                self.reports[name].points.append(point)

    def _peer(self, tool: str, info: ModelInfo, workers: int) -> ManagedProcess:
        if tool == "mlserver":
            return mlserver_service(info, workers=workers)
        return bentoml_service(info, workers=workers)

    def measure_peer(
        self, tool: str, service: ManagedProcess, info: ModelInfo, concurrency: int, **kw: Any
    ) -> Point:
        label = MLSERVER if tool == "mlserver" else BENTOML
        settings = str(service.extra.get("settings", ""))
        log = batch_log(service)
        if tool == "mlserver":
            return self.measure_grpc(
                service.url,
                service.pid,
                info,
                label,
                concurrency=concurrency,
                stats=False,
                settings=settings,
                batch_log=log,
                **kw,
            )
        bodies = [_bento_body(b) for b in json_bodies(info, self.rows[info.name], wrap=None)]
        return self.measure_http(
            service.url,
            service.pid,
            info,
            label,
            bodies,
            concurrency,
            settings=settings,
            batch_log=log,
            **kw,
        )

    def peer_services(self, stack: contextlib.ExitStack) -> dict[tuple[str, str], ManagedProcess]:
        """Each peer that can serve each model, with the worker setting that did best in a
        short sweep at the comparison level (every setting tried is kept in the report)."""
        chosen: dict[tuple[str, str], ManagedProcess] = {}
        for name, info in self.infos.items():
            report = self.reports[name]
            for tool, settings in (
                ("mlserver", self.options.mlserver_workers),
                ("bentoml", self.options.bentoml_workers),
            ):
                label = MLSERVER if tool == "mlserver" else BENTOML
                reason = unsupported_reason(tool, info)
                if reason:
                    report.skipped[label] = reason
                    continue
                best: tuple[float, int] | None = None
                for workers in settings if len(settings) > 1 else ():
                    self.advance(f"{name}: {label} sweep, workers {workers}")
                    try:
                        with self._peer(tool, info, workers) as service:
                            point = self.measure_peer(
                                tool,
                                service,
                                info,
                                self.compare_at,
                                seconds=max(1.0, self.options.seconds / 2),
                            )
                    except BenchError as exc:
                        report.peer_sweep.append(
                            {"server": label, "workers": workers, "error": str(exc)[:300]}
                        )
                        continue
                    report.peer_sweep.append(
                        {
                            "server": label,
                            "workers": workers,
                            "settings": point.settings,
                            "concurrency": self.compare_at,
                            "throughput": point.throughput,
                            "p99_ms": point.p99_ms,
                            "formed_batch": point.avg_batch,
                        }
                    )
                    if best is None or point.throughput > best[0]:
                        best = (point.throughput, workers)
                workers = best[1] if best else settings[0]
                self.advance(f"{name}: {label} (workers {workers})")
                try:
                    chosen[(name, tool)] = stack.enter_context(self._peer(tool, info, workers))
                except BenchError as exc:
                    report.skipped[label] = str(exc)
        return chosen

    def measure_peers(self, peers: dict[tuple[str, str], ManagedProcess]) -> None:
        for (name, tool), service in peers.items():
            info = self.infos[name]
            for concurrency in self.options.concurrency:
                self.advance(f"{name}: {tool} c={concurrency}, run {self.run + 1}")
                self.reports[name].points.append(
                    self.measure_peer(tool, service, info, concurrency)
                )

    def steps(self) -> int:
        """How many progress steps the run has (for the progress bar; an estimate)."""
        n, c = len(self.infos), len(self.options.concurrency)
        per_sweep = n * c * (2 if self.pa_ok else 1)
        per_run = per_sweep * (2 if self.options.batching_off else 1) + n
        per_run += n if self.options.ceiling else 0
        per_run += n * c if self.options.naive else 0
        per_run += 2 * n * (c + 1) if self.options.alternatives else 0
        total = per_run * self.options.runs
        total += 3 * n if self.options.scenarios else 0
        total += 5 * n if self.options.alternatives else 0
        return total


def _bento_body(body: bytes) -> bytes:
    import json

    mapping = json.loads(body)
    return json.dumps({"x": next(iter(mapping.values()))}).encode()


def _machine() -> dict[str, Any]:
    from triton_deploy.bench.environment import host

    return host()


def run_bench(
    options: BenchOptions, *, progress: Callable[[int, str], None] | None = None
) -> BenchReport:
    """Run every step ``options`` asks for; ``progress(total, description)`` is called per step.

    The servers start once and stay up; with ``options.runs`` > 1 each run measures every
    variant in turn, the order reversed every other run.
    """
    total_box = [0]

    def advance(description: str) -> None:
        if progress is not None:
            progress(total_box[0], description)

    runner = _Runner(options, advance)
    total_box[0] = runner.steps()
    report = BenchReport(
        repository=str(runner.repository),
        concurrency=list(options.concurrency),
        seconds=options.seconds,
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        machine=_machine(),
    )
    report.machine["runs"] = options.runs
    if options.perf_analyzer and not runner.pa_ok:
        report.warnings.append(pa.environment("perf_analyzer").missing_reason())
    # Triton over HTTP/JSON: the like-for-like row for every HTTP peer (naive, BentoML)
    peers_http = list(runner.infos) if (options.naive or options.alternatives) else []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="tdeploy-bench-repos-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            on = runner.repository
            if options.queue_policy:
                on = with_queue_policy(runner.repository, Path(tmp) / "queued")
            # the peers' sweeps first (each starts and stops its own server), then everything
            # that stays up for the runs
            peers = runner.peer_services(stack) if options.alternatives else {}
            triton = stack.enter_context(
                TritonServer(on, http_inference=options.http_triton and bool(peers_http))
            )
            off = None
            if options.batching_off:
                off = stack.enter_context(
                    TritonServer(batching_off(runner.repository, Path(tmp) / "off"))
                )
            xgboost_models = [n for n, i in runner.infos.items() if _uses_xgboost(i)]
            stock = None
            if options.same_predictor and xgboost_models:
                with _environment(TDEPLOY_XGBOOST_PREDICTOR="inplace_predict"):
                    stock = stack.enter_context(TritonServer(on))
            naive = runner.naive_services(stack) if options.naive else {}

            def triton_block() -> None:
                runner.sweep_triton(triton, TRITON)
                runner.offline(triton)

            blocks: list[Callable[[], None]] = [triton_block]
            if off is not None:
                blocks.append(lambda: runner.sweep_triton(off, TRITON_OFF))
            if stock is not None:
                blocks.append(
                    lambda: runner.sweep_triton(
                        stock,
                        TRITON_STOCK,
                        levels=[runner.compare_at],
                        perf_analyzer=False,
                        names=xgboost_models,
                    )
                )
            if options.http_triton and peers_http:
                blocks.append(lambda: runner.sweep_triton_http(triton, peers_http))
            if naive:
                blocks.append(lambda: runner.measure_naive(naive))
            if peers:
                blocks.append(lambda: runner.measure_peers(peers))
            for run in range(options.runs):
                runner.run = run
                for block in blocks if run % 2 == 0 else blocks[::-1]:
                    block()
                if options.ceiling:
                    runner.in_process()
            runner.run = 0
            if options.scenarios:
                runner.scenarios(triton)
    finally:
        runner.inputs_dir.cleanup()
    report.models = [runner.reports[name] for name in options.models]
    report.machine["load_average_end"] = list(os.getloadavg())
    for model in report.models:
        for p in model.points:
            if p.client_cpu >= 0.9:
                report.warnings.append(
                    f"{model.model} {p.variant} c={p.concurrency} run {p.run + 1} ({p.generator}): "
                    f"the load generator used {p.client_cpu:.2f} cores: it measured itself as "
                    "much as the server"
                )
    for model in report.models:
        # batching that did not batch compares nothing: say so where it happened
        batched = [p for p in model.points if p.variant == TRITON and p.generator == OURS]
        if model.dynamic_batching and batched and max(p.avg_batch for p in batched) <= 1.0:
            report.warnings.append(
                f"{model.model}: with dynamic batching on, Triton formed no batch larger than 1"
            )
        for label in (MLSERVER, BENTOML):
            mine = [p for p in model.points if p.variant == label]
            logged = [s for p in mine for s in p.stages if s.model.endswith("(its own log)")]
            if mine and logged and max(max(s.batch_sizes, default=1) for s in logged) <= 1:
                report.warnings.append(
                    f"{model.model}: {label}'s adaptive batching ran every request alone "
                    "(its own log): it did not batch"
                )
    if report.machine["load_average"][0] > (report.machine["cpus"] or 1):
        report.warnings.append(
            f"the machine was busy before the run (load average {report.machine['load_average'][0]:.1f} "
            f"on {report.machine['cpus']} cores): absolute numbers are noisy; compare ratios"
        )
    return report
