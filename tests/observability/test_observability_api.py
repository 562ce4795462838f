"""triton_deploy.observability's public names: one sorted __all__, every name importable, and
reading logs needs no training framework, matplotlib or pyarrow."""

from __future__ import annotations

import subprocess
import sys
import types

import triton_deploy.observability as observability


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's __all__ order (RUF022): CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    names = observability.__all__
    assert names == sorted(names, key=_isort_key) and len(set(names)) == len(names)
    for name in names:
        assert getattr(observability, name) is not None
    public = {
        n
        for n, v in vars(observability).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)  # bench: a script
    } - {"annotations"}
    assert public <= set(names), public - set(names)


def test_importing_it_stays_light() -> None:
    code = (
        "import sys, triton_deploy.observability, triton_deploy.cli_monitor;"
        "heavy = {'torch', 'onnx', 'xgboost', 'matplotlib', 'pyarrow', 'prometheus_client'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
