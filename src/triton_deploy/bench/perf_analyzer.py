"""NVIDIA's perf_analyzer, the load generator of record next to ours.

Runs the 2.51 binary from its own environment (``triton_deploy.bench.envs``) against the same
server, with the same inputs (``--input-data`` written from the bench's rows), one run per
concurrency (or Poisson request rate), and reads its CSV: throughput, p50/p90/p95/p99 and the
server-side split (queue, compute input/infer/output) that it takes from Triton's statistics.
Its own CPU use is measured from the child's resource usage. With ``-b N`` its infer/sec
already counts samples (rows), not requests.
"""

from __future__ import annotations

import csv
import io
import json
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.bench.envs import environment
from triton_deploy.bench.payloads import BenchError, ModelInfo

__all__ = ["PerfAnalyzerResult", "available", "run_perf_analyzer", "write_input_data"]


@dataclass
class PerfAnalyzerResult:
    concurrency: int | None
    request_rate: float | None
    batch: int
    samples_per_s: float  # perf_analyzer's infer/sec (samples with -b > 1)
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    queue_us: float
    compute_input_us: float
    compute_infer_us: float
    compute_output_us: float
    client_cpu: float  # cores perf_analyzer used

    @property
    def throughput(self) -> float:
        """Requests/s."""
        return self.samples_per_s / max(1, self.batch)


def available() -> bool:
    return environment("perf_analyzer").ready()


def _content(value: np.ndarray) -> Any:
    if value.dtype == object:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
    return value.reshape(-1).tolist()


def write_input_data(
    info: ModelInfo, rows: dict[str, np.ndarray], path: Path, count: int = 64
) -> Path:
    """perf_analyzer's ``--input-data`` JSON: one entry per row (batching models) or request."""
    data = []
    if info.max_batch_size > 0:
        n = min(count, len(next(iter(rows.values()))))
        for i in range(n):
            data.append(
                {k: {"content": _content(v[i]), "shape": list(v[i].shape)} for k, v in rows.items()}
            )
    else:
        data.append({k: {"content": _content(v), "shape": list(v.shape)} for k, v in rows.items()})
    path.write_text(json.dumps({"data": data}))
    return path


def _float(row: dict[str, str], key: str) -> float:
    try:
        return float(row.get(key) or "nan")
    except ValueError:
        return float("nan")


def run_perf_analyzer(
    url: str,
    info: ModelInfo,
    input_data: Path,
    *,
    concurrency: int | None = None,
    request_rate: float | None = None,
    batch: int = 1,
    seconds: float = 3.0,
    timeout_s: float = 300.0,
) -> PerfAnalyzerResult:
    """One perf_analyzer measurement (three stable windows of ``seconds``/3 at the least)."""
    env = environment("perf_analyzer")
    if not env.ready():
        raise BenchError(env.missing_reason())
    if (concurrency is None) == (request_rate is None):
        raise BenchError("perf_analyzer: give exactly one of concurrency or request_rate")
    with tempfile.TemporaryDirectory(prefix="tdeploy-pa-") as tmp:
        out = Path(tmp) / "result.csv"
        window_ms = max(300, int(seconds * 1000 / 3))
        command = [
            str(env.binary),
            "-m", info.name,
            "-u", url,
            "-i", "grpc",
            "-b", str(batch),
            "--input-data", str(input_data),
            "-p", str(window_ms),
            # perf_analyzer waits for 3 windows within 10 % of each other by default; a shared
            # machine rarely gives that: take 3 windows (up to --max-trials) as they come
            "-s", "999",
            "--max-trials", "6",
            "-f", str(out),
            "--verbose-csv",
        ]  # fmt: skip
        if concurrency is not None:
            command += ["--concurrency-range", str(concurrency)]
        else:
            command += [
                "--request-rate-range", f"{request_rate:.3f}",
                "--request-distribution", "poisson",
            ]  # fmt: skip
        started, cpu0 = time.perf_counter(), _children_cpu()
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env.environment()
        )
        try:
            output, _ = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise BenchError(f"perf_analyzer on '{info.name}' ran past {timeout_s:.0f} s") from None
        wall = time.perf_counter() - started
        # communicate() reaped it: RUSAGE_CHILDREN now includes its CPU time (the bench runs
        # no other child that ends meanwhile).
        cpu = _children_cpu() - cpu0
        if process.returncode != 0 or not out.exists():
            tail = output.decode(errors="replace").strip().splitlines()[-5:]
            raise BenchError(
                f"perf_analyzer on '{info.name}' failed (exit {process.returncode}): "
                + " | ".join(tail)
            )
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
    if not rows:
        raise BenchError(f"perf_analyzer on '{info.name}' wrote no result")
    row = rows[0]
    return PerfAnalyzerResult(
        concurrency=concurrency,
        request_rate=request_rate,
        batch=batch,
        samples_per_s=_float(row, "Inferences/Second"),
        p50_ms=_float(row, "p50 latency") / 1e3,
        p90_ms=_float(row, "p90 latency") / 1e3,
        p95_ms=_float(row, "p95 latency") / 1e3,
        p99_ms=_float(row, "p99 latency") / 1e3,
        avg_ms=_float(row, "Avg latency") / 1e3,
        queue_us=_float(row, "Server Queue"),
        compute_input_us=_float(row, "Server Compute Input"),
        compute_infer_us=_float(row, "Server Compute Infer"),
        compute_output_us=_float(row, "Server Compute Output"),
        client_cpu=cpu / wall if wall > 0 else 0.0,
    )


def _children_cpu() -> float:
    """CPU seconds of every reaped child of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
