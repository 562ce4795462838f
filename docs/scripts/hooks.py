"""mkdocs hooks: lay out the installed package before mkdocstrings looks for it.

mkdocstrings reads the client's docstrings from ``.typecheck/``, the symlink tree of the
installed layout that mypy checks too (``.ci/typecheck.py``): the folders ``clients/``,
``build/`` and ``loadtests/`` map onto ``triton_deploy.*``, which no search path shows as is.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def on_startup(**_: Any) -> None:
    typecheck = runpy.run_path(str(ROOT / ".ci" / "typecheck.py"))
    typecheck["lay_out"](typecheck["package_dirs"]())
