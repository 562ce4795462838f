"""`tdeploy monitor` on rows and expositions made here (no server): checks, thresholds, output.

data/metrics.txt is a /metrics page of the local tritonserver 2.51, started with
``--metrics-config=summary_latencies=true``, after 50 requests to ``lin``, 50 to the ensemble
``pipe`` (10 failures counted) and a rejected request.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from triton_deploy.build.golden import GoldenCase, golden_case_path
from triton_deploy.cli import app
from triton_deploy.errors import ObservabilityError
from triton_deploy.observability import (
    InferenceLog,
    InferenceRecord,
    MetricsWindow,
    Thresholds,
    exposed_samples,
    monitor,
    parse_metrics,
    read_rows,
    write_jsonl,
)

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def records(
    n: int,
    *,
    model: str = "m",
    shift: float = 0.0,
    failed: int = 0,
    nan_every: int = 0,
    seed: int = 0,
) -> list[InferenceRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = (rng.normal(size=(2, 3)) + shift).astype(np.float32)
        y = x.sum(axis=1, keepdims=True)
        if nan_every and i % nan_every == 0:
            y[0, 0] = np.nan
        ok = i >= failed
        out.append(
            InferenceRecord(
                model=model, version=1, trace_id=i + 1, status="OK" if ok else "FAILED",
                start_ns=1_000_000_000 + i * 10_000_000, latency_us=1000.0 + i, request_id=f"r{i}",
                batch_size=2, color="green", source="/t/green.json", inputs={"x": x},
                outputs={"y": y} if ok else {}, dtypes={"x": "FP32", "y": "FP32"},
            )
        )  # fmt: skip
    return out


def golden(seed: int = 9) -> GoldenCase:
    x = np.random.default_rng(seed).normal(size=(600, 3)).astype(np.float32)
    return GoldenCase({"x": x}, {"y": x.sum(axis=1, keepdims=True)})


def test_a_clean_log_passes_with_its_numbers() -> None:
    report = monitor(log=InferenceLog(records(200)), golden={"m": golden()})
    (m,) = report.models
    assert report.passed and (m.model, m.color, m.source) == ("m", "green", "log")
    assert m.requests == 200 and m.failed == 0 and m.error_ratio == 0
    assert m.rate_per_s == pytest.approx(100.0)  # one request every 10 ms
    assert m.p50_ms == pytest.approx(1.0995, abs=1e-3)
    assert {d.tensor for d in m.drift} == {"x", "y"}
    assert {c.name for c in m.checks} == {
        "nonfinite output y", "psi input x", "psi output y", "error ratio",
    }  # fmt: skip


def test_each_threshold_fails_the_run_and_says_why() -> None:
    report = monitor(
        log=InferenceLog(records(200, shift=1.0, failed=10, nan_every=20)),
        golden={"m": golden()},
        thresholds=Thresholds(max_p99_ms=1.0, max_ks=0.2),
    )
    assert not report.passed
    failed = {c.name for c in report.models[0].violations}
    assert failed == {
        "error ratio", "p99 ms", "nonfinite output y", "psi input x", "psi output y",
        "ks input x", "ks output y",
    }  # fmt: skip
    lines = report.violation_lines()
    assert any(line.startswith("m (green): error ratio = 0.05 > 0.01") for line in lines)


def test_too_few_samples_or_no_golden_case_is_not_judged() -> None:
    report = monitor(log=InferenceLog(records(20, shift=3.0)), golden={"m": golden()})
    (m,) = report.models
    assert report.passed
    psi_checks = [c for c in m.checks if c.name.startswith("psi")]
    assert psi_checks and all(
        c.passed is None and "40 live samples < 100" in c.detail for c in psi_checks
    )
    other = monitor(log=InferenceLog(records(200, model="other")), golden={"m": golden()})
    assert other.models[0].drift == [] and "no golden case" in other.models[0].notes[0]


def test_without_tensors_status_and_drift_are_unknown() -> None:
    rows = records(50)
    for r in rows:
        r.status, r.inputs, r.outputs = "UNKNOWN", None, None
    (m,) = monitor(log=InferenceLog(rows), golden={"m": golden()}).models
    assert m.error_ratio is None and m.p99_ms is not None
    assert any("level=TENSORS" in n for n in m.notes)
    assert [c.passed for c in m.checks] == [None]


def test_metrics_of_a_real_triton_page() -> None:
    text = (DATA / "metrics.txt").read_text()
    names = {s.name for s in exposed_samples(text)}
    # Counters keep the names Triton exposes (prometheus_client's parser would add _total).
    assert {"nv_inference_request_success", "nv_inference_request_summary_us_count"} <= names
    counters = parse_metrics(text, color="blue")
    pipe = counters[("pipe", "blue")]
    assert (pipe.success, pipe.failure) == (45, 10)  # all failure reasons summed
    assert pipe.quantiles[0.99] == 1748 and pipe.quantiles[0.5] == 1176
    assert counters[("u8", "blue")].quantiles == {}  # NaN: no request in the window


def test_a_metrics_window_gives_rates_error_ratio_and_quantiles() -> None:
    text = (DATA / "metrics.txt").read_text()
    before = parse_metrics(text.replace("} 45\n", "} 5\n"), color="blue")
    window = MetricsWindow(4.0, before, parse_metrics(text, color="blue"))
    report = monitor(metrics=window, models=["pipe", "missing"])
    (m,) = report.models
    assert (m.source, m.requests, m.failed) == ("metrics", 40 + 0, 0)
    assert m.rate_per_s == pytest.approx(10.0) and m.p99_ms == pytest.approx(1.748)
    assert report.notes == ["model missing: no request in the log or in /metrics"]


def test_cli_exit_codes_json_and_plot(tmp_path: Path) -> None:
    repository = tmp_path / "model_repository"
    repository.mkdir()
    (repository / "m").mkdir()
    golden().save(golden_case_path(repository, "m"))
    clean, drifted = tmp_path / "clean.jsonl", tmp_path / "drifted.jsonl"
    write_jsonl(records(200), clean)
    write_jsonl(records(200, shift=2.0), drifted)
    plot = tmp_path / "out" / "monitor.png"
    args = ["monitor", "--repository", str(repository), "--plot", str(plot)]

    ok = runner.invoke(app, [*args, "--log", str(clean), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["passed"] is True
    assert plot.read_bytes()[:4] == b"\x89PNG"

    bad = runner.invoke(app, [*args, "--log", str(drifted)])
    assert bad.exit_code == 3
    assert "violated m (green): psi input x" in bad.output
    assert "FAIL" in bad.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["monitor"], "give an inference log (--log) and/or --metrics-url"),
        (["monitor", "--log", "/nonexistent/trace"], "does not exist"),
        (
            ["monitor", "--metrics-url", "http://127.0.0.1:9/metrics", "--interval", "0.1"],
            "cannot scrape",
        ),
        (["monitor", "--log", "x.jsonl", "--max-psi", "-1"], "--max-psi: Input should be greater"),
        (["inference-log", "/nonexistent", "--out", "x.csv"], "does not exist"),
    ],
)
def test_cli_input_errors_are_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_rows_files_must_be_json_lines(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"model": "m"}\n')
    with pytest.raises(ObservabilityError, match="not an inference log row"):
        read_rows(rows)
    rows.write_text("{not json\n")
    with pytest.raises(ObservabilityError, match=r"rows\.jsonl:1: not a JSON line"):
        read_rows(rows)
