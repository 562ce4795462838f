"""A pytest plugin: the run fails when a test file under the requested paths collects nothing.

pytest skips some folders without a word: its default ``norecursedirs`` contains ``build``, so
``tests/build/`` was never collected and its 40 tests never ran. After collection, every file
matching ``python_files`` under the requested folders must have been visited (then its tests
are collected, or its skip or import error is reported as usual); otherwise
the run stops with a usage error (exit code 4) naming the files. Folders given to
``--ignore`` / ``--ignore-glob`` and node ids (``file.py::test``) are left alone.

Loaded by tests/conftest.py; elsewhere: ``pytest -p collection_guard``.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

_SEEN = pytest.StashKey[set[Path]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SEEN] = set()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> None:
    # Called for every file pytest visits, before python_files filters them: a file that
    # never comes here sits in a folder pytest did not enter.
    parent.config.stash.setdefault(_SEEN, set()).add(file_path.resolve())


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    seen = config.stash.setdefault(_SEEN, set())
    missing = [path for path in expected_files(config) if path not in seen]
    if missing:
        root = config.rootpath
        names = ", ".join(str(_relative(path, root)) for path in missing)
        raise pytest.UsageError(
            f"{len(missing)} test file(s) under the requested paths were never collected: "
            f"{names}. A folder matching norecursedirs (pytest's default list contains "
            "'build') or a python_files pattern that leaves them out would skip them silently; "
            "fix the pytest configuration."
        )


def expected_files(config: pytest.Config) -> list[Path]:
    """Test files under the requested folders (and requested files), as pytest would name
    them without its skipping rules."""
    patterns = config.getini("python_files")
    ignored = [Path(p).resolve() for p in config.getoption("ignore") or []]
    ignored_globs = list(config.getoption("ignore_glob") or [])
    base = config.invocation_params.dir
    found: set[Path] = set()
    for arg in config.args:
        if "::" in arg:
            continue  # a node id: the user picked tests by hand
        path = (base / arg).resolve()
        if path.is_file():
            found.add(path)
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in files:
                if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
                    found.add(Path(folder, name).resolve())
    return sorted(
        path
        for path in found
        if not any(path.is_relative_to(i) for i in ignored)
        and not any(fnmatch.fnmatch(str(path), g) for g in ignored_globs)
    )


def _relative(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path
