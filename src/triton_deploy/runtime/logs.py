"""Which tritonserver log lines ``tdeploy serve`` shows by default (``--verbose``: all).

Triton prints its backend, model and option tables and an info line per step on every start;
on a CPU-only machine it also warns about GPUs it cannot find. By default ``serve`` shows the
warnings and errors that say something about this server, and nothing else.
"""

from __future__ import annotations

import re

__all__ = ["worth_showing"]

# "W1130 15:20:19.392065 15547 file.cc:273] message" (Triton's default log format) or
# "2026-11-30T15:20:19Z W 15547 file.cc:273] message" (--log-format=ISO8601).
_LEVEL = re.compile(r"^(?:([EWF])\d{4} |\d{4}-\d\d-\d\dT\S+ ([EWF]) )")

# Said on every start without a GPU: nothing the user can act on.
_CPU_NOISE = (
    "pinned system memory",
    "CudaDriverHelper has not been initialized",
    "unable to create stream",
    "Failed to initialize NVML",
    "DCGM unable to start",
    "CUDA driver version is insufficient",
)


def worth_showing(line: str) -> bool:
    """A warning, error or fatal line that is not the CPU-only start-up noise."""
    if not _LEVEL.match(line):
        return False
    return not any(noise in line for noise in _CPU_NOISE)
