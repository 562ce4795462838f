"""The file order plugin (tests/file_order.py): parallel workers get the longest test files
first, as measured, instead of xdist's files-with-most-tests first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    # many short tests, one long test, and a file the table has never seen
    (tests / "test_many.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(4)))
    (tests / "test_long.py").write_text("def test_long():\n    pass\n")
    (tests / "test_new.py").write_text("def test_new():\n    pass\n")
    table = {"files": {"tests/test_many.py": 2.0, "tests/test_long.py": 300.0}}
    (tmp_path / "durations.json").write_text(json.dumps(table))
    return tmp_path


def run_pytest(project: Path, *args: str, table: bool = True) -> list[str]:
    """The files in the order their tests ran, on one xdist worker (which takes the work units
    in the scheduler's order)."""
    table_path = project / ("durations.json" if table else "missing.json")
    env = {
        "PYTHONPATH": str(TESTS),
        "PATH": "/usr/bin:/bin",
        "TEST_FILE_DURATIONS": str(table_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "file_order", "-p", "no:cacheprovider", *args],
        cwd=project, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [
        found.group(1)
        for line in done.stdout.splitlines()
        if "PASSED" in line and (found := re.search(r"(tests/\w+\.py)::", line))
    ]
    return list(dict.fromkeys(ran))


def test_files_run_longest_first_and_unknown_files_before_them(project: Path) -> None:
    order = ["tests/test_new.py", "tests/test_long.py", "tests/test_many.py"]
    assert run_pytest(project, "tests", "-v") == order
    assert run_pytest(project, "tests", "-v", "-n", "1", "--dist", "loadfile") == order


def test_without_a_table_xdist_keeps_its_own_order(project: Path) -> None:
    # xdist's order: the file with the most tests first
    order = run_pytest(project, "tests", "-v", "-n", "1", "--dist", "loadfile", table=False)
    assert order[0] == "tests/test_many.py"


def test_the_committed_table_names_only_files_that_exist() -> None:
    table = json.loads((TESTS / "file_durations.json").read_text())["files"]
    root = TESTS.parent
    missing = [name for name in table if not (root / name).is_file()]
    assert not missing, f"refresh tests/file_durations.json (tests/file_order.py): {missing}"
    assert all(seconds >= 0 for seconds in table.values())
