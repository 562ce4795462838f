"""Defaults shared by the libraries and the ``tdeploy`` command line, in a module that imports
nothing: the command line reads them to define its options, at every start, without loading
the client (gRPC, numpy) or the load tests (pydantic, tritonclient's asyncio client)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_LOADTEST_REPORTS", "DEFAULT_TIMEOUT_S", "DEFAULT_URL"]

#: The client's endpoint when none is given (Triton's gRPC port).
DEFAULT_URL = "localhost:8001"
#: The client's deadline per call, retries included, in seconds.
DEFAULT_TIMEOUT_S = 10.0
#: Where ``tdeploy loadtest`` writes its reports.
DEFAULT_LOADTEST_REPORTS = Path("reports/loadtest")
