"""Benchmark: what tracing (the inference log) costs, on the real local tritonserver.

    tdeploy bench tracing MODEL [--repository model_repository]

For one model (any model with golden cases), the server is started once per tracing setting
(off; TIMESTAMPS every request; TIMESTAMPS+TENSORS every request; TIMESTAMPS+TENSORS every 10th)
and driven with single-sample requests taken from its golden cases at a fixed concurrency for
``--seconds``: throughput, p50/p99 latency seen by the client, and trace bytes written per
request. Prints a table, writes ``trace_bench.json`` and a PNG to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from tritonclient.grpc import service_pb2
from tritonclient.utils import np_to_triton_dtype, serialize_byte_tensor

from triton_deploy.bench.loadgen import GrpcTransport, LoadResult, closed_loop
from triton_deploy.errors import ObservabilityError, TritonDeployError
from triton_deploy.observability._trace_settings import TraceSettings
from triton_deploy.repository import request_inputs
from triton_deploy.runtime.server import TritonServer

__all__ = ["SETTINGS", "Point", "main", "measure"]

#: Name -> --trace settings (None: tracing off). FILE is replaced by a file in a temporary folder.
SETTINGS: dict[str, list[str] | None] = {
    "off": None,
    "timestamps, every request": ["file=FILE", "rate=1"],
    "tensors, every request": ["file=FILE", "rate=1", "level=TIMESTAMPS", "level=TENSORS"],
    "tensors, every 10th": ["file=FILE", "rate=10", "level=TIMESTAMPS", "level=TENSORS"],
}


@dataclass
class Point:
    setting: str
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p99_ms: float
    trace_bytes_per_request: float
    first_error: str = ""  # what the first failed request said ("" when none failed)


def _load(
    url: str, model: str, inputs: dict[str, np.ndarray], concurrency: int, seconds: float
) -> LoadResult:
    """Single-sample requests from the golden cases, through the load generator."""
    rows = len(next(iter(inputs.values())))
    requests = []
    for i in range(min(rows, 256)):
        message = service_pb2.ModelInferRequest(model_name=model)
        for name, column in inputs.items():
            value = np.ascontiguousarray(column[i : i + 1])
            datatype = np_to_triton_dtype(value.dtype)
            message.inputs.add(name=name, datatype=datatype, shape=list(value.shape))
            if datatype == "BYTES":
                message.raw_input_contents.append(serialize_byte_tensor(value).item())
            else:
                message.raw_input_contents.append(value.tobytes())
        requests.append(message.SerializeToString())
    return closed_loop(
        GrpcTransport(url), requests, concurrency=concurrency, seconds=seconds, warmup_s=0.0
    )


def measure(
    repository: Path,
    model: str,
    *,
    seconds: float = 5.0,
    concurrency: int = 8,
    settings: dict[str, list[str] | None] | None = None,
    console: Console | None = None,
) -> list[Point]:
    try:
        inputs = request_inputs(Path(repository), model).arrays
    except TritonDeployError as exc:
        raise ObservabilityError(str(exc)) from None
    points = []
    for name, items in (settings or SETTINGS).items():
        folder = Path(tempfile.mkdtemp(prefix="tdeploy-trace-bench-"))
        try:
            args: list[str] = []
            if items is not None:
                trace = TraceSettings.parse(
                    [i.replace("FILE", str(folder / "t.json")) for i in items]
                )
                args = trace.args()
            with TritonServer(repository, extra_args=args) as server:
                _load(server.grpc_url, model, inputs, concurrency, 1.0)  # warm up
                for f in folder.iterdir():
                    f.unlink()
                result = _load(server.grpc_url, model, inputs, concurrency, seconds)
            written = sum(f.stat().st_size for f in folder.iterdir())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        point = Point(
            name,
            result.requests,
            result.errors,
            result.throughput,
            result.percentile(50),
            result.percentile(99),
            # every request the server answered wrote its trace, the warm-up's excepted
            written / max(round(result.throughput * result.wall_s), 1),
            result.first_error or "",
        )
        points.append(point)
        if console is not None:
            console.print(f"{name}: {point.throughput:.0f} req/s, p99 {point.p99_ms:.2f} ms")
            if point.errors:
                console.print(f"  {point.errors} failed requests; the first: {point.first_error}")
    return points


def table(points: list[Point], model: str) -> Table:
    t = Table(title=f"tracing cost: {model}", title_justify="left")
    for column in ("setting", "requests", "errors", "req/s", "p50 ms", "p99 ms", "trace B/req"):
        t.add_column(column, justify="left" if column == "setting" else "right")
    for p in points:
        t.add_row(
            p.setting, str(p.requests), str(p.errors), f"{p.throughput:.0f}",
            f"{p.p50_ms:.2f}", f"{p.p99_ms:.2f}", f"{p.trace_bytes_per_request:.0f}",
        )  # fmt: skip
    return t


def plot(points: list[Point], model: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [p.setting for p in points]
    left.barh(names, [p.throughput for p in points])
    left.set_xlabel("requests/s")
    right.barh(names, [p.p99_ms for p in points], color="tab:orange")
    right.set_xlabel("p99 latency (ms)")
    right.set_yticks(range(len(names)), [""] * len(names))
    fig.suptitle(f"tracing cost on the local tritonserver: {model}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdeploy bench tracing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("model", help="a model with golden cases")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("reports/trace_bench"))
    args = parser.parse_args(argv)
    console = Console()
    try:
        points = measure(
            args.repository,
            args.model,
            seconds=args.seconds,
            concurrency=args.concurrency,
            console=console,
        )
    except ObservabilityError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1
    console.print(table(points, args.model))
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model": args.model, "points": [asdict(p) for p in points]}
    (args.out / "trace_bench.json").write_text(json.dumps(report, indent=2))
    console.print(
        f"wrote {args.out / 'trace_bench.json'} and {plot(points, args.model, args.out / 'trace_bench.png')}"
    )
    return 0
