"""Goals: measured vs target, pass / MISS / not measured, and the profile behind a miss."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_deploy.bench.goals import GoalsFile, evaluate, goals_markdown, load_goals
from triton_deploy.bench.payloads import BenchError
from triton_deploy.bench.run import (
    MLSERVER,
    NAIVE,
    OURS,
    TRITON,
    TRITON_OFF,
    BenchReport,
    ModelReport,
    Point,
)
from triton_deploy.bench.stats import StageTimes


def _point(variant: str, concurrency: int, throughput: float, p99: float, **kw: object) -> Point:
    return Point(
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


def _report() -> BenchReport:
    model = ModelReport("m", "fil", "synthetic", 64, True)
    model.points = [
        _point(TRITON, 32, 5000, 10),
        _point(TRITON_OFF, 32, 1000, 40),
        _point(TRITON, 1, 300, 6),
        _point(TRITON_OFF, 1, 800, 2),
        _point(TRITON, 2, 500, 3, batch=64, rows=64),
        _point(NAIVE, 32, 1000, 30),
        _point(MLSERVER, 32, 500, 50),
    ]
    model.ceiling = {64: 40000.0}
    model.in_process_latency_ms = {"p50": 0.2}
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
    naive = results[("vs naive FastAPI throughput", OURS)]
    assert naive.measured == 5.0 and naive.passed is False
    assert "queue 900 us" in naive.why and "us of CPU per request" in naive.why
    assert results[("p99 / naive p99", OURS)].passed is False  # 10/30 > 0.1
    share = results[("served / in-process samples/s", OURS)]
    assert share.measured == pytest.approx(32000 / 40000) and share.passed is True
    overhead = results[("serving overhead at c=1", OURS)]
    assert overhead.measured == pytest.approx(1.0 - 0.2) and overhead.passed is False
    assert "with batching on, p50 3.00 ms" in overhead.why
    rival = results[("vs best of MLServer/BentoML throughput", OURS)]
    assert rival.measured == 10.0 and rival.passed is True
    text = goals_markdown(list(results.values()))
    assert "| m | batching on / off throughput" in text and "MISS" in text


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
