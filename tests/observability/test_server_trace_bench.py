"""Smoke test of the tracing-cost benchmark (nothing about speed is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_deploy.bench.tracing import SETTINGS, main, measure

pytestmark = pytest.mark.server


def test_the_benchmark_runs_and_counts_trace_bytes(
    observed_repository: Path, tmp_path: Path
) -> None:
    settings = {k: SETTINGS[k] for k in ("off", "tensors, every request")}
    off, traced = measure(
        observed_repository, "scorer", seconds=0.5, concurrency=2, settings=settings
    )
    assert off.errors == traced.errors == 0, (off.first_error, traced.first_error)
    assert off.requests > 0 and traced.requests > 0
    assert off.trace_bytes_per_request == 0 and traced.trace_bytes_per_request > 500


def test_a_model_without_golden_cases_is_refused(observed_repository: Path, tmp_path: Path) -> None:
    assert main(["--repository", str(observed_repository), "nope", "--out", str(tmp_path)]) == 1
