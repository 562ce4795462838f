"""A pytest plugin: test files run longest first, so that parallel workers finish together.

``make test`` hands whole files to its workers (pytest-xdist ``--dist loadfile``), in the order
of the collection. xdist's own order puts the files with the most tests first, and the files
that take longest here have two to eight tests each (rollouts under load, the benchmarks): they
came last, and one worker ran on alone for a minute while the others had finished. This plugin
orders the collection by each file's wall time in a measured run (``tests/file_durations.json``),
longest first (longest-processing-time scheduling), and turns xdist's reordering off. A file the
table does not know yet runs first: it may be long, and a new test fails early.

Refresh the table after a full run with the CPU profile (``.test-cpu/``, tests/cpu_profile.py):

    PYTHONPATH=tests make test PYTEST_EXTRA="-p cpu_profile"
    .venv/bin/python tests/file_order.py .test-cpu > tests/file_durations.json

Loaded by tests/conftest.py; elsewhere: ``pytest -p file_order``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

DURATIONS = Path(__file__).resolve().parent / "file_durations.json"


def load_durations() -> dict[str, float]:
    """{test file relative to the project root: seconds} from ``$TEST_FILE_DURATIONS`` or
    tests/file_durations.json; empty when the table is missing."""
    path = Path(os.environ.get("TEST_FILE_DURATIONS") or DURATIONS)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {str(name): float(seconds) for name, seconds in table["files"].items()}


def order_by_duration(
    items: list[pytest.Item], durations: dict[str, float], root: Path
) -> list[pytest.Item]:
    """``items`` grouped by file, longest file first; unknown files first of all; ties (and the
    tests inside a file) keep the collection's order."""
    names = [_file_of(item, root) for item in items]
    first_seen: dict[str, int] = {}
    for index, name in enumerate(names):
        first_seen.setdefault(name, index)
    order = sorted(
        range(len(items)),
        key=lambda i: (-durations.get(names[i], math.inf), first_seen[names[i]]),
    )  # stable: a file's own tests keep their order
    return [items[i] for i in order]


def _file_of(item: pytest.Item, root: Path) -> str:
    path = item.path
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


_DURATIONS = pytest.StashKey[dict[str, float]]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    durations = config.stash[_DURATIONS] = load_durations()
    # xdist sorts the files by their number of tests unless told not to; the collection's own
    # order (below) is the better one.
    if hasattr(config.option, "loadscopereorder") and durations:
        config.option.loadscopereorder = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    durations = config.stash.get(_DURATIONS, {})
    if durations:
        items[:] = order_by_duration(items, durations, config.rootpath)


def measured_durations(folder: Path) -> dict[str, float]:
    """Each file's wall seconds (setup, call and teardown of its tests) from the CPU profile's
    one-line-per-test records."""
    seconds: Counter[str] = Counter()
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            seconds[record["test"].split("::", 1)[0]] += record["wall_s"]
    return {name: round(value, 1) for name, value in sorted(seconds.items())}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/file_order.py PROFILE_FOLDER  (e.g. .test-cpu)")
    files = measured_durations(Path(sys.argv[1]))
    if not files:
        sys.exit(f"no *.jsonl records in {sys.argv[1]}: run the suite with -p cpu_profile first")
    about = (
        "Wall seconds per test file in one full run (tests/file_order.py orders the files by "
        "them). Refresh: see tests/file_order.py."
    )
    json.dump({"about": about, "files": files}, sys.stdout, indent=1)
    sys.stdout.write("\n")
