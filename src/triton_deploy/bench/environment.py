"""The host a measurement ran on: CPU model, cores, memory, load average and CPU steal.

Printed before every benchmark run and stored with its raw data, so that a number can be read
against the machine that made it (a load average above the core count, or steal above a few
percent, means the figures measured the neighbours as much as the server).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["busy_reason", "cpu_model", "cpu_times", "describe", "host"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_times() -> tuple[float, float]:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat ((0, 0) elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0, 0.0
    values = [float(v) for v in fields[:8]]
    steal = values[7] if len(values) > 7 else 0.0
    return steal, sum(values)


def host(sample_s: float = 1.0) -> dict[str, Any]:
    """The host now; steal and busy share measured over ``sample_s``."""
    import psutil

    steal0, total0 = cpu_times()
    busy0 = psutil.cpu_times()
    time.sleep(sample_s)
    steal1, total1 = cpu_times()
    busy1 = psutil.cpu_times()
    spent = total1 - total0
    idle = (busy1.idle - busy0.idle) + (getattr(busy1, "iowait", 0) - getattr(busy0, "iowait", 0))
    all_time = sum(busy1) - sum(busy0)
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "steal_percent": round(100.0 * (steal1 - steal0) / spent, 1) if spent > 0 else 0.0,
        "busy_percent": round(100.0 * (1 - idle / all_time), 1) if all_time > 0 else 0.0,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line: 'Intel(R) Xeon(R) ..., 2 cores, load average 0.80, steal 0.0 %, 24 GiB'."""
    load = machine.get("load_average") or [float("nan")]
    return (
        f"{machine.get('cpu_model', '?')}, {machine.get('cpus')} cores, load average "
        f"{load[0]:.2f}, steal {machine.get('steal_percent', 0.0):.1f} %, CPU busy "
        f"{machine.get('busy_percent', 0.0):.0f} %, {machine.get('memory_gib')} GiB"
    )


def busy_reason(machine: dict[str, Any]) -> str | None:
    """Why this host was not quiet enough for figures people should trust, or None."""
    load = (machine.get("load_average") or [0.0])[0]
    cpus = machine.get("cpus") or 1
    if load > 0.5 * cpus:
        return f"load average {load:.2f} on {cpus} cores before the run"
    if machine.get("steal_percent", 0.0) > 2.0:
        return f"{machine['steal_percent']:.1f} % CPU steal"
    return None
