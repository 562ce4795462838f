"""build → repository ← runtime, bench, rollout, observability: the direction of imports.

Nothing outside build/ and the command line (``triton_deploy.cli*``) imports
``triton_deploy.build``; the repository's files (manifest, golden cases) are named only by
``triton_deploy.repository``. Read from the source with ``ast``, so a lazy import inside a
function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import triton_deploy.repository as repository

ROOT = Path(__file__).resolve().parents[2]
# The installed package's folders (pyproject's package-dir) that are not the build.
PACKAGES = {
    "triton_deploy": ROOT / "src" / "triton_deploy",
    "triton_deploy.clients": ROOT / "clients",
    "triton_deploy.loadtests": ROOT / "loadtests",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            found[".".join((package, *parts))] = path
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
            names += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return names


def _is_cli(module: str) -> bool:
    return module.split(".")[1].startswith("cli") if module.count(".") else False


def test_the_modules_are_found() -> None:
    modules = _modules()
    assert "triton_deploy.runtime.server" in modules
    assert "triton_deploy.repository._manifest" in modules
    assert "triton_deploy.loadtests.run" in modules


def test_nothing_outside_build_and_the_cli_imports_the_build() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for module, path in _modules().items()
        if not _is_cli(module)
        for line, name in _imports(path)
        if name == "triton_deploy.build" or name.startswith("triton_deploy.build.")
    ]
    assert offenders == []


def test_the_repository_package_imports_neither_build_nor_its_readers() -> None:
    readers = ("build", "runtime", "bench", "rollout", "observability", "loadtests", "cli")
    for module, path in _modules().items():
        if not module.startswith("triton_deploy.repository"):
            continue
        for line, name in _imports(path):
            assert not any(
                name == f"triton_deploy.{r}" or name.startswith(f"triton_deploy.{r}")
                for r in readers
            ), f"{path.relative_to(ROOT)}:{line}: {name}"


def test_the_repository_files_are_named_in_one_place() -> None:
    names = {repository.MANIFEST, repository.GOLDEN_FILE, repository.SIGNATURE}
    offenders = []
    for module, path in _modules().items():
        if module.startswith("triton_deploy.repository"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert offenders == []


def _isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_sorted_and_lists_exactly_the_public_names() -> None:
    assert repository.__all__ == sorted(repository.__all__, key=_isort_key)
    public = {
        name
        for name, value in vars(repository).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(repository.__all__)
