"""Every third-party package the code imports is declared in pyproject.toml (the dependencies
or an extra), so that a clean install has it: psutil was imported by the bench and installed
only because locust happens to depend on it."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("src/triton_deploy", "build", "clients", "loadtests")
# Imported directly, installed by a declared package's own extra on purpose.
COMES_WITH = {
    "grpcio": "tritonclient[grpc]",
    "urllib3": "kubernetes (the rollout driver catches its connection errors)",
    "protobuf": "tritonclient[grpc] / onnx",
    "gevent": "locust (its users run on gevent; grpc.experimental.gevent)",
    "botocore": "boto3 (the rollout's read of s3:// repositories catches its errors)",
}
# Modules that run inside tritonserver's Python backend, not in our process.
BACKEND_ONLY = {"triton_python_backend_utils"}
# Imported but not declared, on purpose: none.
KNOWN_GAPS: set[str] = set()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {_name(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in requirements}


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def imported_top_level() -> dict[str, set[str]]:
    """Top-level module -> the files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    providers = importlib.metadata.packages_distributions()
    # the project itself (build/ is triton_deploy.build), and the project's files that Python
    # models import as siblings once copied next to them (ctr_features, tdeploy_batching, ...)
    ours = {"triton_deploy", "build"} | {
        path.stem for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")
    }
    wanted = declared() | {_name(d) for d in COMES_WITH}
    undeclared = {}
    for module, files in sorted(imported_top_level().items()):
        if (
            module in ours
            or module in sys.stdlib_module_names
            or module in BACKEND_ONLY | KNOWN_GAPS
        ):
            continue
        # not installed here (e.g. tensorrt, GPU machines only): its own name must be declared
        distributions = {_name(d) for d in providers.get(module, [])} or {_name(module)}
        if not distributions & wanted:
            undeclared[module] = (sorted(distributions), sorted(files))
    assert undeclared == {}, undeclared
