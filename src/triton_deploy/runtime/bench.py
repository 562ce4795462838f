"""Benchmark: dynamic batching on vs off, on the real local tritonserver, next to in-process runs.

    python -m triton_deploy.runtime.bench [--repository model_repository] [--seconds 6]

For ``digits_cnn``, ``ctr_xgb`` and both ensembles: throughput and p50/p99 latency at
concurrency 1, 8 and 32 with single-sample requests (an asyncio gRPC load generator in this
process), with dynamic batching on and off (a copy of the repository with ``dynamic_batching``
removed from every config), the average batch size the server formed (from its statistics),
the same model run in-process at that batch size, and the CPU the load generator and the
server used. Prints a table, writes ``bench.json`` and a PNG plot to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from tritonclient.utils import np_to_triton_dtype

from triton_deploy.build.golden import GoldenCase, golden_case_path
from triton_deploy.runtime.repository import read_config
from triton_deploy.runtime.server import TritonServer

MODELS = ("digits_cnn", "ctr_xgb", "digits", "ctr")
# The composing model whose batches tell how well an ensemble batched.
BATCH_PROBE = {
    "digits_cnn": "digits_cnn",
    "ctr_xgb": "ctr_xgb",
    "digits": "digits_cnn",
    "ctr": "ctr_xgb",
}


@dataclass
class Point:
    model: str
    batching: str
    concurrency: int
    requests: int
    errors: int
    throughput: float  # requests/s
    p50_ms: float
    p99_ms: float
    avg_batch: float
    client_cpu: float  # cores used by the load generator
    server_cpu: float  # cores used by tritonserver and its Python stubs


def variant(repository: Path, destination: Path, *, batching: bool, queue: bool) -> Path:
    """A copy of the repository with dynamic batching removed, or with a queue policy added."""
    from google.protobuf import text_format

    from triton_deploy.build.configs import queue_policy
    from triton_deploy.build.spec import QueuePolicy

    shutil.copytree(repository, destination, symlinks=True)
    for path in destination.glob("*/config.pbtxt"):
        config = read_config(path)
        if not config.HasField("dynamic_batching"):
            continue
        if not batching:
            config.ClearField("dynamic_batching")
        elif queue:
            config.dynamic_batching.default_queue_policy.CopyFrom(queue_policy(QueuePolicy()))
        path.write_text(text_format.MessageToString(config))
    return destination


def _server_cpu_seconds(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


async def _load(
    url: str, model: str, rows: dict[str, np.ndarray], concurrency: int, seconds: float
) -> tuple[list[float], int]:
    import tritonclient.grpc.aio as aioclient

    client = aioclient.InferenceServerClient(url)
    n = len(next(iter(rows.values())))
    requests = []
    for i in range(min(n, 256)):
        inputs = []
        for name, column in rows.items():
            value = column[i : i + 1]
            tensor = aioclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        requests.append(inputs)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await client.infer(model, requests[i % len(requests)])
                latencies.append(time.perf_counter() - started)
            except Exception:  # counted; the run goes on
                errors += 1
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    await client.close()
    return latencies, errors


def _avg_batch(url: str, model: str) -> tuple[int, int]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    stats = client.get_inference_statistics(model).model_stats[0]
    client.close()
    return int(stats.inference_count), int(stats.execution_count)


def measure(
    server: TritonServer,
    model: str,
    rows: dict[str, np.ndarray],
    concurrency: int,
    seconds: float,
    batching: str,
) -> Point:
    asyncio.run(_load(server.grpc_url, model, rows, concurrency, min(1.0, seconds)))  # warm-up
    probe = BATCH_PROBE[model]
    inferences0, executions0 = _avg_batch(server.grpc_url, probe)
    cpu0, server0, wall0 = os.times(), _server_cpu_seconds(server.pid or 0), time.perf_counter()
    latencies, errors = asyncio.run(_load(server.grpc_url, model, rows, concurrency, seconds))
    wall = time.perf_counter() - wall0
    cpu1, server1 = os.times(), _server_cpu_seconds(server.pid or 0)
    inferences1, executions1 = _avg_batch(server.grpc_url, probe)
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    return Point(
        model=model,
        batching=batching,
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        throughput=len(latencies) / wall,
        p50_ms=statistics.median(ms),
        p99_ms=ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        avg_batch=(inferences1 - inferences0) / max(executions1 - executions0, 1),
        client_cpu=((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall,
        server_cpu=(server1 - server0) / wall,
    )


def in_process(
    model: str, repository: Path, rows: dict[str, np.ndarray], batch: int, seconds: float = 2.0
) -> float:
    """Rows/s of the source model run in this process at ``batch`` rows per call."""
    import onnxruntime as ort
    import xgboost

    batch = max(1, batch)
    if model in ("digits_cnn", "digits"):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(repository / "digits_cnn/1/model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        from triton_deploy.build.examples.digits.digits_features import postprocess, preprocess

        def run(i: int) -> None:
            if model == "digits":
                images = np.resize(rows["IMAGES"], (batch, 8, 8))
                postprocess(session.run(None, {"images": preprocess(images)})[0], 3)
            else:
                session.run(None, {"images": np.resize(rows["images"], (batch, 1, 8, 8))})
    else:
        booster = xgboost.Booster()
        booster.load_model(str(repository / "ctr_xgb/1/xgboost.json"))
        booster.set_param({"nthread": 1})
        from triton_deploy.build.examples.ctr.ctr_features import FeatureEncoder

        encoder = FeatureEncoder.from_json(
            (repository / "ctr_features/1/vocabulary.json").read_text()
        )

        def run(i: int) -> None:
            if model == "ctr":
                columns = {k: np.resize(v, (batch, 1)) for k, v in rows.items()}
                booster.inplace_predict(encoder.encode(columns), validate_features=False)
            else:
                booster.inplace_predict(
                    np.resize(rows["input__0"], (batch, rows["input__0"].shape[1])),
                    validate_features=False,
                )

    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(count)
        count += 1
    return count * batch / (time.perf_counter() - started)


def plot(points: list[Point], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MODELS), figsize=(4 * len(MODELS), 7), constrained_layout=True)
    for column, model in enumerate(MODELS):
        for batching, style, color in (("on", "-o", "C0"), ("off", "--s", "C1")):
            series = [p for p in points if p.model == model and p.batching == batching]
            conc = [p.concurrency for p in series]
            label = f"batching {batching}"
            axes[0, column].plot(
                conc, [p.throughput for p in series], style, color=color, label=label
            )
            axes[1, column].plot(
                conc, [p.p99_ms for p in series], style, color=color, label=f"p99, {label}"
            )
            axes[1, column].plot(
                conc,
                [p.p50_ms for p in series],
                style,
                color=color,
                alpha=0.35,
                label=f"p50, {label}",
            )
        axes[0, column].set_title(model)
        axes[0, column].set_ylabel("requests/s")
        axes[1, column].set_ylabel("latency (ms)")
        axes[1, column].set_xlabel("concurrency (single-sample requests)")
        for ax in axes[:, column]:
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(
        "Local tritonserver (CPU, 2 cores incl. load generator): dynamic batching on vs off"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    parser.add_argument(
        "--queue-policy",
        action="store_true",
        help="add a default_queue_policy (max 256 queued, 1 s timeout) to the batching run",
    )
    args = parser.parse_args(argv)
    console = Console()
    repository = args.repository.resolve()
    cases = {m: GoldenCase.load(golden_case_path(repository, m)).inputs for m in args.models}
    points: list[Point] = []
    with tempfile.TemporaryDirectory() as tmp:
        on = (
            variant(repository, Path(tmp) / "on", batching=True, queue=True)
            if args.queue_policy
            else repository
        )
        off = variant(repository, Path(tmp) / "off", batching=False, queue=False)
        for batching, repo in (("on", on), ("off", off)):
            with TritonServer(repo) as server:
                for model in args.models:
                    for concurrency in args.concurrency:
                        point = measure(
                            server, model, cases[model], concurrency, args.seconds, batching
                        )
                        points.append(point)
                        console.print(
                            f"{model:10} batching {batching:3} c={concurrency:<3} {point.throughput:8.0f} req/s "
                            f"p50 {point.p50_ms:6.2f} ms p99 {point.p99_ms:6.2f} ms batch {point.avg_batch:5.1f}"
                        )
    inproc = {(p.model, round(p.avg_batch)): 0.0 for p in points}
    for model, batch in inproc:
        inproc[(model, batch)] = in_process(model, repository, cases[model], batch)
    table = Table(title="dynamic batching on vs off (single-sample requests)")
    for col in (
        "model",
        "conc",
        "batching",
        "req/s",
        "p50 ms",
        "p99 ms",
        "avg batch",
        "in-process rows/s at that batch",
        "client CPU",
        "server CPU",
        "errors",
    ):
        table.add_column(col, justify="right")
    for p in points:
        table.add_row(
            p.model,
            str(p.concurrency),
            p.batching,
            f"{p.throughput:.0f}",
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            f"{p.avg_batch:.1f}",
            f"{inproc[(p.model, round(p.avg_batch))]:.0f}",
            f"{p.client_cpu:.2f}",
            f"{p.server_cpu:.2f}",
            str(p.errors),
        )
    console.print(table)
    speedups = Table(title="speed-up of dynamic batching")
    for col in ("model", "conc", "on / off"):
        speedups.add_column(col, justify="right")
    by_key = {(p.model, p.concurrency, p.batching): p for p in points}
    for model in args.models:
        for concurrency in args.concurrency:
            fast, slow = by_key[(model, concurrency, "on")], by_key[(model, concurrency, "off")]
            speedups.add_row(
                model, str(concurrency), f"{fast.throughput / max(slow.throughput, 1e-9):.2f}x"
            )
    console.print(speedups)
    args.out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "points": [asdict(p) for p in points],
        "in_process": {f"{m}@{b}": v for (m, b), v in inproc.items()},
    }
    (args.out / "bench.json").write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {args.out / 'bench.json'} and {plot(points, args.out / 'bench.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
