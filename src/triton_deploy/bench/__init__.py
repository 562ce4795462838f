"""Performance: ``tdeploy bench`` (Triton next to its alternatives, MLPerf scenarios, goals) and
``tdeploy tune`` (batching and instance sweeps written back into the spec).

    from triton_deploy.bench import BenchOptions, run_bench, write_report
    report = run_bench(BenchOptions(repository=Path("model_repository"), models=["my_model"]))
    write_report(report, Path("reports/bench"))

Names are imported on first use, so that the small modules (``envs``, ``naive_service``) run
without loading the whole bench.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BenchError",
    "BenchOptions",
    "BenchReport",
    "ModelInfo",
    "ModelReport",
    "Point",
    "TuneOptions",
    "model_info",
    "run_bench",
    "run_tune",
    "sample_rows",
    "write_report",
]

_WHERE = {
    "BenchError": "payloads",
    "ModelInfo": "payloads",
    "model_info": "payloads",
    "sample_rows": "payloads",
    "BenchOptions": "run",
    "BenchReport": "run",
    "ModelReport": "run",
    "Point": "run",
    "run_bench": "run",
    "write_report": "report",
    "TuneOptions": "tune",
    "run_tune": "tune",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'triton_deploy.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"triton_deploy.bench.{_WHERE[name]}"), name)
