"""The overload benchmark runs end to end (its figures are printed, never asserted here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from triton_deploy.bench import overload


@pytest.mark.server
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing: run .ci/system-deps")
def test_overload_benchmark_runs_and_writes_its_report(
    model_repository: Path, tmp_path: Path
) -> None:
    args = ["--repository", str(model_repository), "--out", str(tmp_path)]
    args += ["--seconds", "2", "--recovery-seconds", "2", "--normal-seconds", "2"]
    args += ["--capacity-seconds", "2", "--drain-seconds", "1"]
    assert overload.main(args) == 0
    report = json.loads((tmp_path / "overload.json").read_text())
    assert report["capacity_rps"] > 0
    assert [p["name"] for p in report["phases"]] == ["normal", "overload", "recovery"]
    assert [d["after_overload"] for d in report["drain"]] == [False, True]
    names = [f["name"] for f in report["figures"]]
    assert any("RSS growth" in n for n in names) and any("in-flight failures" in n for n in names)
    assert any("at the server edge" in n for n in names)  # from the shedder's access log
    assert report["edge_normal_p99_ms"] > 0
    assert (tmp_path / "overload.png").stat().st_size > 0


@pytest.mark.server
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy missing: run .ci/system-deps")
def test_overload_benchmark_runs_the_charts_sidecar_config(
    model_repository: Path, tmp_path: Path
) -> None:
    """--chart-values: the shedder runs the chart's rendered sidecar config (ports mapped, the
    access log added), with the chart's bounds."""
    values = tmp_path / "values.yaml"
    values.write_text("overload: {maxInflight: 16, maxQueued: 8}\n")
    args = ["--repository", str(model_repository), "--out", str(tmp_path), "--no-drain"]
    args += ["--seconds", "2", "--recovery-seconds", "2", "--normal-seconds", "2"]
    args += ["--capacity-seconds", "2", "--chart-values", str(values)]
    assert overload.main(args) == 0
    report = json.loads((tmp_path / "overload.json").read_text())
    assert (
        report["protection"]
        == "load shedder: 16 in flight, 8 queued (the Helm chart's sidecar config)"
    )
    assert report["edge_normal_p99_ms"] > 0  # the access log was added to the chart's config
