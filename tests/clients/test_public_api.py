"""The package's public surface: an honest ``__all__``, a light import, twin parity."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import triton_deploy.clients as clients
from triton_deploy.build.examples.ctr.client import AsyncCtrClient, CtrClient
from triton_deploy.build.examples.digits.client import AsyncDigitsClient, DigitsClient
from triton_deploy.clients import AsyncInferenceClient, InferenceClient
from triton_deploy.errors import TritonDeployError

HEAVY = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "xgboost",
    "tensorrt",
    "treelite",
    "sklearn",
    "scipy",
    "pandas",
    "typer",
    "rich",
)


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_all_is_sorted_and_unique() -> None:
    assert clients.__all__ == sorted(clients.__all__, key=_isort_key)
    assert len(set(clients.__all__)) == len(clients.__all__)


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(clients).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(clients.__all__)
    for name in clients.__all__:
        assert getattr(clients, name) is not None


def test_public_classes_live_in_the_package() -> None:
    for name in clients.__all__:
        value = getattr(clients, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__ == "triton_deploy.clients", name


def test_errors_are_rooted_at_the_project_error() -> None:
    for name in clients.__all__:
        value = getattr(clients, name)
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, clients.ClientError), name
    assert issubclass(clients.ClientError, TritonDeployError)


FRAMEWORKS = HEAVY[:-2]  # the load-test payloads may use rich (through the loadtests package)


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("triton_deploy.clients", HEAVY),
        ("triton_deploy.build.examples.digits.client", HEAVY),
        ("triton_deploy.build.examples.ctr.client", HEAVY),
        ("triton_deploy.build.examples.digits.payloads", FRAMEWORKS),
        ("triton_deploy.build.examples.ctr.payloads", FRAMEWORKS),
    ],
)
def test_import_is_light(module: str, heavy: tuple[str, ...]) -> None:
    code = (
        "import json, sys\n"
        f"import {module}\n"
        f"heavy = {heavy!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_command_line_starts_without_the_libraries_its_commands_use() -> None:
    """`tdeploy` runs as a fresh process for every command (rollouts call it in loops, CI in
    scripts): defining its commands must not load gRPC, numpy, pydantic or the Kubernetes
    client; each command imports what it needs when it runs."""
    heavy = ("grpc", "numpy", "tritonclient", "pydantic", "kubernetes", "yaml", "torch", "onnx")
    code = (
        "import json, sys\n"
        "import triton_deploy.cli\n"
        "triton_deploy.cli.app.registered_commands  # every command defined\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / "tdeploy"), "infer", "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert help_text.returncode == 0 and "--input" in help_text.stdout, help_text.stderr


def test_nothing_without_opentelemetry_is_imported_for_tracing() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "from triton_deploy.clients import InferenceClient\n"
        "c = InferenceClient('127.0.0.1:1')\n"
        "print(c._headers(None), sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None ['opentelemetry']", out.stdout + out.stderr


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("DigitsClient", DigitsClient),
        ("AsyncDigitsClient", AsyncDigitsClient),
        ("CtrClient", CtrClient),
        ("AsyncCtrClient", AsyncCtrClient),
    ],
)
def test_example_clients_moved_with_a_deprecation(name: str, home: type) -> None:
    with pytest.warns(DeprecationWarning, match=f"moved to {home.__module__}"):
        assert getattr(clients, name) is home
    with pytest.raises(AttributeError):
        clients.NoSuchThing  # noqa: B018


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_async_twins_have_the_same_methods_and_signatures() -> None:
    pairs = [
        (InferenceClient, AsyncInferenceClient, {"close"}, {"aclose"}),
        (DigitsClient, AsyncDigitsClient, set(), set()),
        (CtrClient, AsyncCtrClient, set(), set()),
    ]
    for sync_cls, async_cls, sync_only, async_only in pairs:
        sync_methods = _public_methods(sync_cls)
        async_methods = _public_methods(async_cls)
        assert set(sync_methods) - sync_only == set(async_methods) - async_only
        for name in set(sync_methods) - sync_only:
            sync_sig, async_sig = sync_methods[name], async_methods[name]
            assert list(sync_sig.parameters) == list(async_sig.parameters), name
            for param in sync_sig.parameters:
                a, b = sync_sig.parameters[param], async_sig.parameters[param]
                assert (a.kind, a.default, a.annotation) == (b.kind, b.default, b.annotation), (
                    name,
                    param,
                )
            assert sync_sig.return_annotation == async_sig.return_annotation, name
            assert inspect.iscoroutinefunction(getattr(async_cls, name)), name
            assert not inspect.iscoroutinefunction(getattr(sync_cls, name)), name
