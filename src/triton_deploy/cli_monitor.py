"""``tdeploy monitor`` and ``tdeploy inference-log``: the inference log and model monitoring.

Registered on the main app by ``cli.py``. Thin wrappers over ``triton_deploy.observability``;
they raise ``TritonDeployError`` and the app prints it and exits 1. ``monitor`` exits with 3
when a threshold is violated (as ``tdeploy loadtest`` does for an SLO).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from triton_deploy.cli_options import DEFAULT_REPOSITORY, Json, Repository
from triton_deploy.errors import ObservabilityError

if TYPE_CHECKING:
    from triton_deploy.observability import InferenceLog

__all__ = ["EXIT_VIOLATED", "inference_log", "monitor"]

EXIT_VIOLATED = 3
DEFAULT_PLOT = Path("reports/monitor/monitor.png")

console = Console(stderr=True)


def _read_log(paths: list[Path], *, tensors: bool, color: str | None) -> InferenceLog:
    from triton_deploy.observability import read_inference_log

    with console.status(f"reading the inference log from {len(paths)} path(s)"):
        return read_inference_log(paths, tensors=tensors, color=color)


def inference_log(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Triton trace files (FILE, FILE.0, FILE.1, ...) or folders holding them.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the rows here: .jsonl (JSON lines) or .parquet (needs pyarrow).",
        ),
    ] = None,
    tensors: Annotated[
        bool,
        typer.Option(help="Include each request's inputs and outputs (traced at level TENSORS)."),
    ] = True,
    color: Annotated[
        str | None,
        typer.Option(help="Color of every row (default: from chart file names <color>.json.N)."),
    ] = None,
) -> None:
    """Turn Triton's trace files into inference log rows: one per traced request and model."""
    from triton_deploy.observability import write_jsonl, write_parquet

    log = _read_log(paths, tensors=tensors, color=color)
    if out is not None:
        if out.suffix not in (".jsonl", ".parquet"):
            raise ObservabilityError(f"--out {out}: use a .jsonl or .parquet file name")
        writer = write_parquet if out.suffix == ".parquet" else write_jsonl
        count = writer(log.records, out)
    import numpy as np  # when the command runs, not at every `tdeploy` start

    table = Table(title="inference log", title_justify="left")
    for column in ("model", "color", "rows", "OK", "FAILED", "UNKNOWN", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("model", "color") else "right")
    groups: dict[tuple[str, str], list[float]] = {}
    statuses: dict[tuple[str, str], dict[str, int]] = {}
    for rec in log.records:
        key = (rec.model, rec.color or "-")
        statuses.setdefault(key, {"OK": 0, "FAILED": 0, "UNKNOWN": 0})[rec.status] += 1
        if rec.latency_us is not None and rec.status != "FAILED":
            groups.setdefault(key, []).append(rec.latency_us / 1000.0)
    for key in sorted(statuses):
        lat = np.array(groups.get(key, []))
        s = statuses[key]
        table.add_row(
            key[0],
            key[1],
            str(sum(s.values())),
            str(s["OK"]),
            str(s["FAILED"]),
            str(s["UNKNOWN"]),
            f"{np.percentile(lat, 50):.2f}" if lat.size else "-",
            f"{np.percentile(lat, 99):.2f}" if lat.size else "-",
        )
    Console().print(table)
    for path in log.incomplete:
        console.print(f"[yellow]skipped[/] {path}: still being written (no closing ']')")
    if out is not None:
        console.print(f"wrote {count} rows to {out}")


def monitor(
    log: Annotated[
        list[Path] | None,
        typer.Option(
            "--log",
            help="Inference log: trace files, folders of them, or .jsonl/.parquet rows (repeatable).",
        ),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            help="Triton's /metrics URL, scraped twice --interval apart.",
            envvar="TDEPLOY_METRICS_URL",
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between the two /metrics scrapes.")
    ] = 10.0,
    repository: Repository = DEFAULT_REPOSITORY,
    model: Annotated[list[str] | None, typer.Option(help="Only these models (repeatable).")] = None,
    color: Annotated[
        str | None, typer.Option(help="Color label of this log / endpoint, when it has none.")
    ] = None,
    max_error_ratio: Annotated[
        float | None, typer.Option(help="Most failed requests allowed, as a ratio.")
    ] = 0.01,
    max_p99_ms: Annotated[
        float | None, typer.Option(help="Highest p99 of Triton's request time, in ms.")
    ] = None,
    max_nonfinite: Annotated[
        float | None, typer.Option(help="Largest share of NaN/inf allowed in any output.")
    ] = 0.0,
    max_psi: Annotated[
        float | None,
        typer.Option(help="Largest PSI of any input or output feature vs the golden cases."),
    ] = 0.25,
    max_ks: Annotated[
        float | None, typer.Option(help="Largest KS statistic of any feature (default: off).")
    ] = None,
    min_samples: Annotated[
        int, typer.Option(min=1, help="Live samples a tensor needs before its drift is judged.")
    ] = 100,
    as_json: Json = False,
    plot: Annotated[
        Path | None, typer.Option(help="PNG of the live vs golden distributions.")
    ] = DEFAULT_PLOT,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write the PNG.")] = False,
) -> None:
    """Per model and color: rate, errors, p50/p99, NaN/inf and drift vs the build's golden cases.

    Exit code 0: every threshold met; 3: a threshold violated; 1: the inputs could not be used.
    """
    from pydantic import ValidationError

    from triton_deploy.observability import Thresholds, window
    from triton_deploy.observability import monitor as run_monitor
    from triton_deploy.observability._plot import plot_distributions
    from triton_deploy.repository import load_golden_cases
    from triton_deploy.runtime.repository import read_repository

    if not log and not metrics_url:
        raise ObservabilityError("give an inference log (--log) and/or --metrics-url")
    try:
        thresholds = Thresholds(
            max_error_ratio=max_error_ratio,
            max_p99_ms=max_p99_ms,
            max_nonfinite_ratio=max_nonfinite,
            max_psi=max_psi,
            max_ks=max_ks,
            min_samples=min_samples,
        )
    except ValidationError as exc:
        flags = {"max_nonfinite_ratio": "max_nonfinite"}
        raise ObservabilityError(
            "; ".join(
                f"--{flags.get(str(e['loc'][0]), str(e['loc'][0])).replace('_', '-')}: {e['msg']}"
                for e in exc.errors()
            )
        ) from None
    golden = load_golden_cases(repository) if log else {}
    batched: dict[str, bool] = {}
    if any(repository.glob("*/config.pbtxt")):
        models = read_repository(repository)
        batched = {name: m.config.max_batch_size > 0 for name, m in models.items()}
    if log and not golden:
        console.print(
            f"[yellow]note[/]: no golden cases for {repository} "
            "(built elsewhere, or --repository not set): drift is not measured"
        )
    records = _read_log(log, tensors=True, color=color) if log else None
    metrics = None
    if metrics_url:
        with console.status(f"scraping {metrics_url} twice, {interval:g} s apart"):
            metrics = window(metrics_url, interval_s=interval, color=color)
    report = run_monitor(
        log=records,
        metrics=metrics,
        golden=golden,
        batched=batched,
        thresholds=thresholds,
        models=model,
    )
    png = None if no_plot or plot is None else plot_distributions(report, plot)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        Console().print(report.table())
        for m in report.models:
            for note in m.notes:
                console.print(f"[dim]{m.model} ({m.color or '-'}): {note}[/]")
    for note in report.notes:
        console.print(f"[yellow]note[/]: {note}")
    if png is not None:
        console.print(f"distributions: {png}")
    if not report.models:
        raise ObservabilityError("no model to judge: the log and /metrics hold no request")
    if not report.passed:
        for line in report.violation_lines():
            console.print(f"[bold red]violated[/] {line}", highlight=False)
        raise typer.Exit(code=EXIT_VIOLATED)
