"""``python -m triton_deploy.build`` is ``tdeploy build``.

``python -m build`` (PyPA's wheel builder) run from the repository root finds this folder
first, because Python puts the current directory in front of ``sys.path``; run that way, this
module steps aside and hands the command line over to PyPA's ``build``.
"""

from __future__ import annotations

import os
import runpy
import sys


def _run_pypa_build() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
    for name in [m for m in sys.modules if m == "build" or m.startswith("build.")]:
        del sys.modules[name]
    try:
        runpy.run_module("build", run_name="__main__", alter_sys=True)
    except ImportError:
        sys.exit("python -m build: PyPA's build is not installed here (pip install build)")


if __package__ == "build":  # imported as the top-level "build": the repository root's folder
    _run_pypa_build()
else:
    from triton_deploy.cli import app

    app(["build", *sys.argv[1:]], prog_name="python -m triton_deploy.build")
