"""A ``BenchReport`` as JSON, Markdown, rich tables and PNG plots.

- ``bench.json``: everything measured (every point with its stage times and CPU use).
- ``bench.md``: per model, one table row per point; the in-process ceiling; the scenarios;
  what was skipped and why; the warnings.
- ``throughput.png``: throughput vs concurrency, one panel per model, one line per server
  variant and load generator. ``latency.png``: p99 vs throughput (the curve users size by).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from triton_deploy.bench.run import BenchReport, ModelReport, Point

__all__ = ["markdown", "plot", "style_axes", "tables", "write_report"]

_COLUMNS = (
    "server",
    "generator",
    "conc",
    "batch",
    "req/s",
    "samples/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "formed batch",
    "queue us",
    "infer us",
    "output us",
    "server CPU",
    "gen CPU",
    "errors",
)


def _row(p: Point) -> list[str]:
    stage = p.stages[0] if p.stages else None
    return [
        p.variant,
        p.generator,
        str(p.concurrency) if p.request_rate is None else f"{p.request_rate:.0f}/s",
        str(p.batch),
        f"{p.throughput:,.0f}",
        f"{p.samples_per_s:,.0f}",
        f"{p.p50_ms:.2f}",
        f"{p.p95_ms:.2f}",
        f"{p.p99_ms:.2f}",
        f"{p.avg_batch:.1f}" if p.avg_batch else "",
        f"{stage.queue_us:.0f}" if stage else "",
        f"{stage.compute_infer_us:.0f}" if stage else "",
        f"{stage.compute_output_us:.0f}" if stage else "",
        f"{p.server_cpu:.2f}" if p.server_cpu is not None else "",
        f"{p.client_cpu:.2f}" + (" !" if p.client_cpu >= 0.9 else ""),
        str(p.errors) if not p.error else f"{p.errors} ({p.error[:60]})",
    ]


def _sorted(points: list[Point]) -> list[Point]:
    return sorted(points, key=lambda p: (p.variant, p.generator, p.batch, p.concurrency))


def tables(report: BenchReport) -> list[Table]:
    out = []
    for model in report.models:
        table = Table(
            title=f"{model.model} ({model.kind}, inputs: {model.inputs_from})",
            title_justify="left",
        )
        for column in _COLUMNS:
            table.add_column(
                column, justify="left" if column in ("server", "generator") else "right"
            )
        for p in _sorted(model.points):
            table.add_row(*_row(p))
        out.append(table)
        if model.ceiling:
            ceiling = Table(
                title=f"{model.model} in-process ({model.in_process_framework})",
                title_justify="left",
            )
            ceiling.add_column("batch", justify="right")
            ceiling.add_column("samples/s", justify="right")
            for batch, value in sorted(model.ceiling.items()):
                ceiling.add_row(str(batch), f"{value:,.0f}")
            out.append(ceiling)
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _model_md(model: ModelReport) -> str:
    parts = [
        f"### {model.model}\n",
        f"{model.kind}, max_batch_size {model.max_batch_size}, dynamic batching "
        f"{'on' if model.dynamic_batching else 'off'} in its config; inputs: {model.inputs_from}.\n",
        _md_table(list(_COLUMNS), [_row(p) for p in _sorted(model.points)]),
    ]
    split_rows = [
        [
            p.variant,
            str(p.concurrency),
            ", ".join(f"{name} {us:,.0f}" for name, us in p.cpu_us_per_request.items()),
        ]
        for p in _sorted(model.points)
        if p.cpu_us_per_request and p.batch == 1 and p.request_rate is None
    ]
    if split_rows:
        parts.append(
            "\nCPU per request by process, in µs (our generator's runs):\n\n"
            + _md_table(["server", "conc", "CPU per request"], split_rows)
        )
    if model.ceiling:
        parts.append(
            f"\nIn-process ({model.in_process_framework}): "
            + ", ".join(f"batch {b}: {v:,.0f} samples/s" for b, v in sorted(model.ceiling.items()))
            + (
                f"; single-row latency p50 {model.in_process_latency_ms['p50']:.3f} ms"
                if model.in_process_latency_ms
                else ""
            )
            + "."
        )
    if model.scenarios:
        rows = []
        single = model.scenarios.get("SingleStream")
        if single:
            rows.append(["SingleStream", f"p90 {single['p90_ms']:.2f} ms at concurrency 1"])
        server = model.scenarios.get("Server")
        if server and server["max_qps"] > 0:
            rows.append(
                [
                    "Server",
                    f"{server['max_qps']:,.0f} queries/s (Poisson) with p99 ≤ {server['p99_bound_ms']:g} ms",
                ]
            )
        elif server and server["tried"]:
            first = server["tried"][0]
            rows.append(
                [
                    "Server",
                    f"no rate tried kept p99 ≤ {server['p99_bound_ms']:g} ms (p99 "
                    f"{first['p99_ms']:.1f} ms at {first['rate']:,.0f} queries/s)",
                ]
            )
        offline = model.scenarios.get("Offline")
        if offline:
            extra = (
                f", perf_analyzer {offline['perf_analyzer_samples_per_s']:,.0f}"
                if "perf_analyzer_samples_per_s" in offline
                else ""
            )
            rows.append(
                [
                    "Offline",
                    f"{offline['samples_per_s']:,.0f} samples/s (batches of {offline['batch']}, "
                    f"{offline['concurrency']} in flight{extra})",
                ]
            )
        parts.append("\nMLPerf scenarios:\n\n" + _md_table(["scenario", "result"], rows))
    if model.skipped:
        parts.append(
            "\nNot measured:\n" + "\n".join(f"- {k}: {v}" for k, v in model.skipped.items())
        )
    return "\n".join(parts)


def markdown(report: BenchReport, images: list[str] | None = None) -> str:
    head = [
        "# tdeploy bench",
        "",
        f"Repository `{report.repository}`, {report.seconds:g} s per point, concurrency "
        f"{', '.join(map(str, report.concurrency))}; {report.machine.get('cpus')} CPUs, load average "
        f"{report.machine.get('load_average', [0])[0]:.1f} at the start, "
        f"{report.machine.get('load_average_end', [0])[0]:.1f} at the end ({report.started}).",
        "",
        "Columns: queue / infer / output us are Triton's per-request statistics for the model "
        "(queue, compute_infer, compute_output); formed batch = the average batch the server "
        "executed; server CPU and gen CPU = cores used by the server's processes and by the load "
        "generator (`!` = the generator saturated a core).",
        "",
    ]
    for image in images or []:
        head.append(f"![{image}]({image})")
    if report.warnings:
        head += ["", "Warnings:", *[f"- {w}" for w in report.warnings]]
    return "\n".join(head) + "\n\n" + "\n\n".join(_model_md(m) for m in report.models) + "\n"


_STYLES = {
    ("triton", "tdeploy"): ("C0", "-o"),
    ("triton", "perf_analyzer"): ("C0", ":^"),
    ("triton, batching off", "tdeploy"): ("C1", "--s"),
    ("triton, batching off", "perf_analyzer"): ("C1", ":v"),
    ("naive FastAPI", "tdeploy"): ("C3", "-x"),
    ("MLServer", "tdeploy"): ("C2", "-d"),
    ("BentoML", "tdeploy"): ("C4", "-p"),
}


def plot(report: BenchReport, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in report.models if m.points]
    if not models:
        return []
    paths = []
    for kind in ("throughput", "latency"):
        fig, axes = plt.subplots(
            1, len(models), figsize=(5 * len(models), 4.2), constrained_layout=True, squeeze=False
        )
        for ax, model in zip(axes[0], models, strict=True):
            for (variant, generator), (color, style) in _STYLES.items():
                series = sorted(
                    (
                        p
                        for p in model.points
                        if p.variant == variant
                        and p.generator == generator
                        and p.batch == 1
                        and p.request_rate is None
                        and p.requests + p.throughput > 0
                    ),
                    key=lambda p: p.concurrency,
                )
                if not series:
                    continue
                label = f"{variant} ({generator})"
                if kind == "throughput":
                    ax.plot(
                        [p.concurrency for p in series],
                        [p.throughput for p in series],
                        style,
                        color=color,
                        label=label,
                    )
                else:
                    ax.plot(
                        [p.throughput for p in series],
                        [p.p99_ms for p in series],
                        style,
                        color=color,
                        label=label,
                    )
            style_axes(ax, kind, model.model)
            ax.legend(fontsize=7)
        fig.suptitle(
            f"{'Throughput vs concurrency' if kind == 'throughput' else 'p99 latency vs throughput'}"
            f" — {report.machine.get('cpus')} CPUs, load generator on the same machine"
        )
        path = out / f"{kind}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def style_axes(ax: Any, kind: str, title: str, *, of_runs: bool = False) -> None:
    """One panel's title, grid, scales and labels: throughput vs concurrency, or p99 vs
    throughput (``of_runs``: the values are medians of repeated runs)."""
    median = " (median, min–max)" if of_runs and kind == "throughput" else ""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if kind == "throughput":
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (single-sample requests)")
        ax.set_ylabel(f"requests/s{median}")
    else:
        ax.set_yscale("log")
        ax.set_xlabel("requests/s (median)" if of_runs else "requests/s")
        ax.set_ylabel("p99 latency (ms, median)" if of_runs else "p99 latency (ms)")


def write_report(report: BenchReport, out: Path) -> list[Path]:
    """bench.json, bench.md and the PNGs in ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    images = plot(report, out)
    json_path = out / "bench.json"
    json_path.write_text(json.dumps(report.to_json(), indent=1, default=str))
    md_path = out / "bench.md"
    md_path.write_text(markdown(report, [p.name for p in images]))
    return [json_path, md_path, *images]
