"""A PNG of a run over time: throughput and latency percentiles per model.

    python -m triton_deploy.loadtests.plot reports/loadtest/local_stats_history.csv out.png

Reads locust's stats history CSV (``--csv PREFIX --csv-full-history`` writes one row per
second per request name, plus "Aggregated"). Top: requests/s per model (from the growth of the
total request count between rows, not locust's 10 s moving average, so a spike shows when it
happens), failures/s when there were any, and the number of users; bottom: p50/p95/p99 per
model over locust's sliding window of the last ~10 s (log scale, so a slow tail and a fast
median both show).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .config import LoadTestConfigError

__all__ = ["History", "plot_history", "read_history"]

PERCENTILES = ("50%", "95%", "99%")
_STYLES = {"50%": "-", "95%": "--", "99%": ":"}
AGGREGATED = "Aggregated"


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    failures: list[float] = field(default_factory=list)
    last_requests: float = 0.0
    last_failures: float = 0.0
    percentiles: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class History:
    users_seconds: list[float] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=dict)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:  # "N/A" before the first response
        return math.nan
    return value


def read_history(path: Path) -> History:
    """The history CSV as series per request name (seconds from the first row)."""
    try:
        with Path(path).open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise LoadTestConfigError(
            f"{path}: no such file (run locust with --csv PREFIX --csv-full-history)"
        ) from None
    if not rows or "Timestamp" not in rows[0]:
        raise LoadTestConfigError(f"{path}: not a locust stats history CSV (no rows)")
    start = min(float(row["Timestamp"]) for row in rows)
    history = History()
    for row in rows:
        seconds = float(row["Timestamp"]) - start
        name = row["Name"]
        if name == AGGREGATED:
            history.users_seconds.append(seconds)
            history.users.append(int(float(row["User Count"])))
        series = history.series.setdefault(name, Series())
        requests, failures = (
            _number(row["Total Request Count"]),
            _number(row["Total Failure Count"]),
        )
        if series.seconds and seconds > series.seconds[-1]:
            elapsed = seconds - series.seconds[-1]
            series.rps.append((requests - series.last_requests) / elapsed)
            series.failures.append((failures - series.last_failures) / elapsed)
        else:  # the first row of a name: its requests since the start are unknown in time
            series.rps.append(math.nan)
            series.failures.append(math.nan)
        series.last_requests, series.last_failures = requests, failures
        series.seconds.append(seconds)
        for percentile in PERCENTILES:
            value = _number(row[percentile])
            # 0 is how locust writes "no response in the window"; it is not a latency.
            series.percentiles[percentile].append(value if value > 0 else math.nan)
    return history


def plot_history(history_csv: Path, png: Path, *, title: str = "Load test") -> Path:
    """Write the PNG; returns its path."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.ticker import FuncFormatter

    history = read_history(history_csv)
    figure = Figure(figsize=(12, 7.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    models = sorted(name for name in history.series if name != AGGREGATED)
    colors = {name: f"C{i}" for i, name in enumerate(models)}

    for name in models:
        series = history.series[name]
        top.plot(series.seconds, series.rps, color=colors[name], label=f"{name} req/s")
        if any(f > 0 for f in series.failures if not math.isnan(f)):
            top.plot(
                series.seconds,
                series.failures,
                color=colors[name],
                linestyle="--",
                label=f"{name} failures/s",
            )
        for percentile in PERCENTILES:
            bottom.plot(
                series.seconds,
                series.percentiles[percentile],
                color=colors[name],
                linestyle=_STYLES[percentile],
                label=f"{name} p{percentile.rstrip('%')}",
            )
    aggregated = history.series.get(AGGREGATED)
    if aggregated is not None:
        top.plot(aggregated.seconds, aggregated.rps, color="black", label="all req/s")
    users_axis = top.twinx()
    users_axis.step(history.users_seconds, history.users, where="post", color="grey", alpha=0.6)
    users_axis.set_ylabel("users", color="grey")
    users_axis.set_ylim(bottom=0)

    top.set_title(title)
    top.set_ylabel("requests / s")
    top.set_ylim(bottom=0)
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize="small")
    top.grid(alpha=0.3)
    bottom.set_ylabel("latency, ms (last ~10 s)")
    if any(
        not math.isnan(v)
        for s in history.series.values()
        for values in s.percentiles.values()
        for v in values
    ):
        bottom.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        bottom.yaxis.set_major_formatter(plain)
        bottom.yaxis.set_minor_formatter(plain)
    bottom.set_xlabel("seconds since start")
    if models:  # nothing to label when no request was answered
        bottom.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize="small")
    bottom.grid(alpha=0.3, which="both")

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100)
    return png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("history_csv", type=Path, help="PREFIX_stats_history.csv")
    parser.add_argument("png", type=Path, help="PNG to write")
    parser.add_argument("--title", default="Load test")
    args = parser.parse_args(argv)
    print(plot_history(args.history_csv, args.png, title=args.title))


if __name__ == "__main__":
    main()
