"""The over-time PNG from locust's stats history CSV."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from triton_deploy.loadtests import LoadTestConfigError
from triton_deploy.loadtests.plot import plot_history, read_history

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)


def row(
    t: int, users: int, name: str, total: int, failures: int, p50: str, p95: str, p99: str
) -> str:
    kind = "" if name == "Aggregated" else "grpc"
    return (
        f"{t},{users},{kind},{name},0.0,0.0,{p50},0,0,0,0,{p95},0,{p99},0,0,0,"
        f"{total},{failures},0,0,0,0,0"
    )


@pytest.fixture
def history_csv(tmp_path: Path) -> Path:
    lines = [
        HEADER,
        row(100, 0, "Aggregated", 0, 0, "N/A", "N/A", "N/A"),
        row(101, 4, "digits", 50, 0, "0", "0", "0"),
        row(101, 4, "Aggregated", 50, 0, "5", "9", "12"),
        row(102, 8, "digits", 250, 10, "6", "10", "20"),
        row(102, 8, "Aggregated", 250, 10, "6", "10", "20"),
        row(104, 8, "digits", 650, 10, "7", "11", "30"),
        row(104, 8, "Aggregated", 650, 10, "7", "11", "30"),
    ]
    path = tmp_path / "run_stats_history.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rates_come_from_request_count_growth(history_csv: Path) -> None:
    history = read_history(history_csv)
    assert history.users_seconds == [0, 1, 2, 4] and history.users == [0, 4, 8, 8]
    digits = history.series["digits"]
    assert digits.seconds == [1, 2, 4]
    assert math.isnan(digits.rps[0])  # first row of a name: no earlier count to compare
    assert digits.rps[1:] == [200.0, 200.0]
    assert digits.failures[1:] == [10.0, 0.0]
    # 0 and N/A mean "no response in the window", not a 0 ms latency.
    assert math.isnan(digits.percentiles["99%"][0])
    assert digits.percentiles["99%"][1:] == [20.0, 30.0]


def test_png(history_csv: Path, tmp_path: Path) -> None:
    png = plot_history(history_csv, tmp_path / "out" / "over_time.png", title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_missing_or_empty_history(tmp_path: Path) -> None:
    with pytest.raises(LoadTestConfigError, match="--csv-full-history"):
        read_history(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n")
    with pytest.raises(LoadTestConfigError, match="no rows"):
        read_history(empty)


def test_png_of_a_run_without_a_single_response(tmp_path: Path) -> None:
    path = tmp_path / "idle_stats_history.csv"
    path.write_text(HEADER + "\n" + row(100, 2, "Aggregated", 0, 0, "N/A", "N/A", "N/A") + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "no artists with labels"
        png = plot_history(path, tmp_path / "idle.png")
    assert png.is_file()
