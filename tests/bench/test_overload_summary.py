"""`tdeploy bench overload --summarize`: medians and spreads of repeated runs, per setting."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from triton_deploy.bench.overload import summarize


def _run(path: Path, protection: str, edge_ratio: float, rss_growth: float) -> Path:
    run = {
        "protection": protection,
        "capacity_rps": 1000.0,
        "normal_p99_built_ms": 40.0,
        "edge_rejected_p99_ms": 0.0,
        "edge_rejected_max_ms": 12.0,
        "edge_normal_p99_ms": 50.0,
        "edge_overload_ok_p99_ms": 50.0 * edge_ratio,
        "normal_p99_ms": 60.0,
        "overload_ok_p99_ms": 120.0,
        "rss_before_mb": 400.0,
        "rss_peak_mb": 400.0 + rss_growth,
        "recovery_s": 0.0,
        "sender_late_p99_ms": 5.0,
        "drain": [{"in_flight_failures": 0}, {"in_flight_failures": 1}],
        "phases": [{"name": "overload", "start": 10.0, "end": 12.0}],
        "timeline": {"t": [9.0, 10.0, 11.0, 12.0], "ok_per_s": [1.0, 600.0, 800.0, 1.0]},
    }
    path.write_text(json.dumps(run))
    return path


def test_medians_and_spreads_per_protection_setting(tmp_path: Path) -> None:
    paths = [
        _run(tmp_path / "a1.json", "shedder A", 2.0, 1.0),
        _run(tmp_path / "a2.json", "shedder A", 4.0, 3.0),
        _run(tmp_path / "a3.json", "shedder A", 3.0, 9.0),
        _run(tmp_path / "b1.json", "shedder B", 1.5, 2.0),
    ]
    console = Console(width=300, record=True)
    console.print(summarize(paths))
    text = console.export_text()
    rows = {
        line.split("│")[1].strip(): line.split("│")[2:4]
        for line in text.splitlines()
        if line.count("│") == 4
    }
    edge = rows["accepted p99 under overload / normal load, at the edge"]
    assert edge[0].strip() == "3.00 (2.00–4.00) x" and edge[1].strip() == "1.50 x"
    assert rows["server RSS growth during the overload"][0].strip() == "3.0 (1.0–9.0) MB"
    assert (
        rows["requests served per second during the overload"][0].strip() == "700 (700–700) req/s"
    )
    assert rows["in-flight failures on SIGTERM (both stops)"][0].strip() == "1 (1–1)"
    assert "shedder A (3 runs)" in text and "shedder B (1 run)" in text
