"""Session fixtures: a small repository made here, and two traced load runs on a real server.

Each run starts tritonserver with tracing on (mode triton, every request, timestamps and
tensors) and the chart's metrics flags, drives it from 8 threads, scrapes /metrics while the
load runs, and stops it gracefully so that Triton writes its last trace file.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from observetools import Feed, Sent, build_repository, clean_feed, drifted_feed, drive

from triton_deploy.observability import TraceSettings
from triton_deploy.runtime.server import TritonServer

REQUESTS = 150  # per model and run


@dataclass
class Run:
    repository: Path
    trace_dir: Path
    sent: list[Sent]
    metrics_text: str  # scraped right after the load, server still up
    metrics_under_load: list[str]  # scraped every 0.3 s while the load ran
    server_log: list[str]


@pytest.fixture(scope="session")
def observed_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("observed"))


def chart_metrics_args() -> list[str]:
    """The chart's --metrics-config flags (latency summaries), as rendered for blue."""
    from chartargs import rendered_triton_args

    return [a for a in rendered_triton_args({}, "blue") if a.startswith("--metrics-config")]


def traced_run(repository: Path, trace_dir: Path, feed: Feed, requests: int) -> Run:
    settings = TraceSettings.parse(
        [
            f"file={trace_dir}/blue.json",
            "rate=1",
            "level=TIMESTAMPS",
            "level=TENSORS",
            "log-frequency=50",
        ]
    )
    settings.prepare()
    texts: list[str] = []
    done = threading.Event()
    with TritonServer(repository, extra_args=[*settings.args(), *chart_metrics_args()]) as server:

        def scrape_under_load() -> None:
            while not done.wait(0.3):
                with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
                    texts.append(reply.read().decode())

        scraper = threading.Thread(target=scrape_under_load, daemon=True)
        scraper.start()
        try:
            sent = drive(server.grpc_url, feed, requests=requests)
        finally:
            done.set()
            scraper.join(timeout=10)
        with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
            final = reply.read().decode()
        log = list(server.log)
    assert texts, "no /metrics scrape happened while the load ran"
    return Run(repository, trace_dir, sent, final, texts, log)


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
