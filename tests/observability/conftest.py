"""Session fixtures: a small repository made here, and two traced load runs on a real server.

Each run starts tritonserver with tracing on (mode triton, every request, timestamps and
tensors) and the chart's metrics flags, drives it from 8 threads, scrapes /metrics while the
load runs (every 50 ms), and stops it gracefully so that Triton writes its last trace file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from observetools import Run, build_repository, clean_feed, drifted_feed, traced_run

REQUESTS = 150  # per model and run


@pytest.fixture(scope="session")
def observed_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("observed"))


@pytest.fixture(scope="session")
def clean_run(observed_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield traced_run(
        observed_repository,
        tmp_path_factory.mktemp("clean") / "trace",
        clean_feed(REQUESTS),
        REQUESTS,
    )


@pytest.fixture(scope="session")
def drifted_run(
    observed_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    yield traced_run(
        observed_repository,
        tmp_path_factory.mktemp("drifted") / "trace",
        drifted_feed(REQUESTS),
        REQUESTS,
    )
