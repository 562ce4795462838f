"""The collection guard (tests/collection_guard.py) turns a silently skipped test folder into a
failed run: the fault that hid tests/build for a while."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "collection_guard", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # pytest's defaults: 'build' not entered
    for folder in ("build", "clients"):
        (tmp_path / "tests" / folder).mkdir(parents=True)
        (tmp_path / "tests" / folder / f"test_{folder}.py").write_text("def test_x():\n    pass\n")
    return tmp_path


def test_a_folder_pytest_skips_fails_the_run(project: Path) -> None:
    done = run_pytest(project, "tests", "-q")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "tests/build/test_build.py" in done.stderr
    assert "never collected" in done.stderr and "norecursedirs" in done.stderr


def test_every_folder_collected_passes(project: Path) -> None:
    done = run_pytest(project, "tests", "-q", "-o", "norecursedirs=.*")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_ignored_folders_and_node_ids_are_the_callers_choice(project: Path) -> None:
    done = run_pytest(project, "tests", "-q", "--ignore", "tests/build")
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_pytest(project, "tests/clients/test_clients.py::test_x", "-q")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_module_that_skips_itself_counts_as_collected(project: Path) -> None:
    (project / "tests" / "build" / "test_build.py").write_text(
        "import pytest\npytest.skip('not here', allow_module_level=True)\n"
    )
    done = run_pytest(project, "tests", "-q", "-o", "norecursedirs=.*")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout


def test_this_projects_configuration_collects_every_test_file() -> None:
    root = TESTS.parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}
    on_disk = {str(p.relative_to(root)) for p in TESTS.rglob("test_*.py")}
    assert on_disk == collected
