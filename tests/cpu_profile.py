"""Where the suite's CPU goes: an opt-in pytest plugin (``-p cpu_profile``, tests/ on PYTHONPATH).

    PYTHONPATH=tests make test PYTEST_EXTRA="-p cpu_profile"

Each test's wall time and CPU seconds, of the pytest process (or xdist worker) that ran it and of
its children that ended during the test (``getrusage``: a tritonserver's stubs count when the
server stops), one JSON line per test in ``$TEST_CPU_DIR`` (default ``.test-cpu/``), one file per
worker. At the end: CPU seconds per test folder, and how busy the machine's cores were over the
run (psutil), the figures of docs/development.md's "Test time".
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

_started: dict[str, float] = {}


def _folder() -> Path:
    return Path(os.environ.get("TEST_CPU_DIR", ".test-cpu")).absolute()


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot, busy as ``tdeploy bench`` counts it
    (triton_deploy.bench.environment.host: all but idle and iowait)."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _is_controller(config):
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jsonl"):
            old.unlink()
        busy, total = _machine()
        _started.update(busy=busy, total=total, wall=time.monotonic())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    started = time.time()
    own, wall = _cpu_seconds(resource.RUSAGE_SELF), time.monotonic()
    children = _cpu_seconds(resource.RUSAGE_CHILDREN)
    yield
    record = {
        "test": item.nodeid,
        "started": round(started, 3),
        "wall_s": round(time.monotonic() - wall, 3),
        "cpu_s": round(_cpu_seconds(resource.RUSAGE_SELF) - own, 3),
        "children_cpu_s": round(_cpu_seconds(resource.RUSAGE_CHILDREN) - children, 3),
    }
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (_folder() / f"{worker}.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _is_controller(terminalreporter.config) or not _started:
        return
    own: Counter[str] = Counter()
    children: Counter[str] = Counter()
    for path in _folder().glob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            folder = "/".join(record["test"].split("::")[0].split("/")[:-1])
            own[folder] += record["cpu_s"]
            children[folder] += record["children_cpu_s"]
    busy, total = _machine()
    cores = os.cpu_count() or 1
    share = 100.0 * (busy - _started["busy"]) / max(1, total - _started["total"])
    write = terminalreporter.write_line
    terminalreporter.section("CPU seconds per test folder (pytest process + children)")
    for folder in sorted(own, key=lambda f: -(own[f] + children[f])):
        mine, theirs = own[folder], children[folder]
        write(f"{mine + theirs:8.0f}  {mine:7.0f} + {theirs:7.0f}  {folder}")
    write(
        f"{sum(own.values()) + sum(children.values()):8.0f}  in all; wall "
        f"{time.monotonic() - _started['wall']:.0f} s, the machine's {cores} cores {share:.0f} % busy"
    )
