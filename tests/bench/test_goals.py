"""Goals: measured vs target, pass / MISS / not measured, and the profile behind a miss."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from triton_deploy.bench import run as bench_run
from triton_deploy.bench.goals import GoalsFile, evaluate, goals_markdown, load_goals
from triton_deploy.bench.payloads import BenchError
from triton_deploy.bench.run import (
    BENTOML,
    HTTP,
    MLSERVER,
    NAIVE,
    OURS,
    TRITON,
    TRITON_HTTP,
    TRITON_OFF,
    BenchReport,
    ModelReport,
    Point,
)
from triton_deploy.bench.stats import StageTimes
from triton_deploy.cli import app


def _point(variant: str, concurrency: int, throughput: float, p99: float, **kw: object) -> Point:
    run = int(kw.pop("run", 0))  # type: ignore[call-overload]
    return Point(
        run=run,
        variant=variant,
        generator=OURS,
        concurrency=concurrency,
        batch=int(kw.pop("batch", 1)),  # type: ignore[call-overload]
        throughput=throughput,
        samples_per_s=throughput * int(kw.pop("rows", 1)),  # type: ignore[call-overload]
        p50_ms=p99 / 2,
        p90_ms=p99,
        p95_ms=p99,
        p99_ms=p99,
        server_cpu=1.0,
        client_cpu=0.5,
        stages=[
            StageTimes(
                "m", requests=10, queue_us=900, compute_infer_us=100, executions=2, inferences=10
            )
        ],
    )


def _report(runs: int = 1, gain_per_run: tuple[float, ...] = (5.0,)) -> BenchReport:
    model = ModelReport("m", "fil", "synthetic", 64, True)
    for run in range(runs):
        gain = gain_per_run[run % len(gain_per_run)]
        model.points += [
            _point(TRITON, 32, 1000 * gain, 10, run=run),
            _point(TRITON_OFF, 32, 1000, 40, run=run),
            _point(TRITON, 1, 300, 6, run=run),
            _point(TRITON_OFF, 1, 800, 2, run=run),
            _point(TRITON, 2, 500, 3, batch=64, rows=64, run=run),
            _point(TRITON_HTTP, 32, 2000, 12, run=run),
            _point(NAIVE, 32, 1000, 30, run=run),
            _point(MLSERVER, 32, 500, 50, run=run),
            _point(BENTOML, 32, 1000, 20, run=run),
        ]
        model.ceiling_runs.append({1: 5000.0, 5: 40000.0, 64: 80000.0})
        model.in_process_latency_runs.append({"p50": 0.2})
    for p in model.points:
        if p.variant in (TRITON_HTTP, NAIVE, BENTOML):
            p.protocol = HTTP
    return BenchReport("repo", [1, 32], 1.0, "now", {"cpus": 2}, [model])


def test_each_goal_is_checked() -> None:
    goals = GoalsFile.model_validate(
        {
            "models": {"m": {"batching_gain": 4.0}},
            "defaults": {
                "naive_speedup": 15,
                "naive_p99_ratio": 0.1,
                "ceiling_share": 0.7,
                "overhead_ms": 0.5,
                "alternative_speedup": 5,
            },
        }
    )
    results = {(r.goal.split(",")[0], r.generator): r for r in evaluate(_report(), goals)}
    gain = results[("batching on / off throughput", OURS)]
    assert gain.measured == 5.0 and gain.passed is True
    assert results[("batching on / off throughput", "perf_analyzer")].passed is None
    # the naive service (HTTP/JSON) is compared with Triton over HTTP/JSON, not gRPC
    naive = results[("vs naive FastAPI throughput", OURS)]
    assert naive.measured == 2.0 and naive.passed is False and "HTTP/JSON" in naive.compares
    assert "queue 900 us" in naive.why and "us of CPU per request" in naive.why
    assert results[("p99 / naive p99", OURS)].passed is False  # 12/30 > 0.1
    # divided by the ceiling at the batch Triton formed (5 rows per execution), not at 64
    share = results[("served / in-process samples/s at the formed batch", OURS)]
    assert share.measured == pytest.approx(32000 / 40000) and share.passed is True
    overhead = results[("serving overhead at c=1", OURS)]
    assert overhead.measured == pytest.approx(1.0 - 0.2) and overhead.passed is False
    assert "with batching on, p50 3.00 ms" in overhead.why
    # each peer over its own protocol: gRPC 5000/500 = 10, HTTP 2000/1000 = 2; the best peer
    # (the lowest ratio) decides
    rival = results[("vs best of MLServer/BentoML throughput", OURS)]
    assert rival.measured == 2.0 and rival.passed is False
    assert "BentoML (HTTP/JSON" in rival.why
    text = goals_markdown(list(results.values()))
    assert "| m | batching on / off throughput" in text and "MISS" in text


def test_goals_are_the_median_of_the_runs_and_say_when_the_spread_crosses() -> None:
    goals = GoalsFile.model_validate({"models": {"m": {"batching_gain": 4.0}}})
    report = _report(runs=5, gain_per_run=(5.0, 3.0, 6.0, 4.5, 4.2))
    gain = next(
        r for r in evaluate(report, goals) if r.goal.startswith("batching") and r.generator == OURS
    )
    assert gain.runs == [5.0, 3.0, 6.0, 4.5, 4.2]
    assert gain.measured == 4.5 and gain.passed is True
    assert (gain.low, gain.high) == (3.0, 6.0) and gain.spread_crosses
    assert "1 of 5 runs missed it" in gain.why
    assert "3.00–6.00 (5 runs)" in goals_markdown([gain])


def _goals_file(tmp_path: Path, gain: float) -> Path:
    path = tmp_path / "goals.yaml"
    path.write_text(
        f"concurrency: 32\noffline_batch: 64\ndefaults: {{batching_gain: {gain}}}\nmodels: {{m: {{}}}}\n"
    )
    return path


@pytest.mark.parametrize(("gain", "code"), [(4.0, 0), (6.0, 3)])
def test_strict_exits_non_zero_on_a_miss_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gain: float, code: int
) -> None:
    """``--strict``: a met goal exits 0, a missed one 3 (the measurement itself is stubbed:
    the real run is tests/bench/test_bench_server.py)."""
    monkeypatch.setattr(bench_run, "run_bench", lambda options, progress=None: _report())
    result = CliRunner().invoke(
        app,
        ["bench", "m", "--goals-file", str(_goals_file(tmp_path, gain)), "--strict",
         "--out", str(tmp_path / "out"), "--runs", "1"],
    )  # fmt: skip
    assert result.exit_code == code, result.output
    assert ("--strict" in result.output) == (code == 3)
    # without --strict the same miss exits 0 (the report says MISS)
    plain = CliRunner().invoke(
        app,
        ["bench", "m", "--goals-file", str(_goals_file(tmp_path, gain)), "--out",
         str(tmp_path / "out2")],
    )  # fmt: skip
    assert plain.exit_code == 0, plain.output


def test_a_model_missing_from_the_run_is_not_measured() -> None:
    goals = GoalsFile.model_validate({"models": {"other": {}}})
    (result,) = evaluate(_report(), goals)
    assert result.passed is None and result.why == "model not benchmarked"


def test_shipped_goals_file_is_valid() -> None:
    goals = load_goals()
    assert goals.models and goals.concurrency >= 1


def test_bad_goals_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "goals.yaml"
    path.write_text("models: {m: {batching_gain: -1}}\n")
    with pytest.raises(BenchError, match=r"goals.yaml: invalid goals file.*batching_gain"):
        load_goals(path)
