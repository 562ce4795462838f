"""``tdeploy verify``: the live server against the source frameworks.

The build runs each model's samples through its source framework in-process (onnxruntime,
torch, xgboost, lightgbm, the Python model's own code; ensembles step by step) and keeps the
inputs, the outputs and the tolerance as the model's golden case inside the repository
(``<repository>/<model>/golden.npz``). Verify sends those inputs to the server over gRPC and
compares every output: integers and strings exactly, floats within the tolerance. It needs
only the repository folder (from any working directory), numpy and tritonclient, so a staging
endpoint can be checked from a machine without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from tritonclient.utils import np_to_triton_dtype

from triton_deploy.build.golden import load_golden_cases
from triton_deploy.build.pipeline import parity
from triton_deploy.build.spec import BuildSpec, Tolerance
from triton_deploy.errors import VerificationError

__all__ = ["VerificationReport", "verify_server"]


@dataclass
class Row:
    model: str
    output: str
    max_abs_diff: float
    tolerance: str
    passed: bool
    note: str = ""


@dataclass
class VerificationReport:
    rows: list[Row] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows if r.note != "skipped")

    @property
    def failed_models(self) -> list[str]:
        return sorted({r.model for r in self.rows if not r.passed and r.note != "skipped"})

    def table(self) -> Table:
        table = Table(title="tdeploy verify: served vs source framework")
        for column in ("model", "output", "max abs diff", "tolerance", "pass", "note"):
            table.add_column(column)
        for r in self.rows:
            mark = (
                "[yellow]skip[/]"
                if r.note == "skipped"
                else ("[green]yes[/]" if r.passed else "[bold red]NO[/]")
            )
            diff = "" if r.note == "skipped" else f"{r.max_abs_diff:.3e}"
            table.add_row(
                r.model,
                r.output,
                diff,
                r.tolerance,
                mark,
                r.note if r.note != "skipped" else r.tolerance,
            )
        return table


def _infer_one(
    client: Any, model: str, inputs: dict[str, np.ndarray], outputs: list[str]
) -> dict[str, np.ndarray]:
    """One request with the case's inputs as they are (a model without a batch dimension)."""
    import tritonclient.grpc as grpcclient

    request = []
    for name, value in inputs.items():
        tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
        tensor.set_data_from_numpy(value)
        request.append(tensor)
    result = client.infer(
        model,
        request,
        outputs=[grpcclient.InferRequestedOutput(n) for n in outputs],
        client_timeout=60,
    )
    return {name: result.as_numpy(name) for name in outputs}


def _infer(
    client: Any, model: str, inputs: dict[str, np.ndarray], outputs: list[str], batch: int
) -> dict[str, np.ndarray]:
    import tritonclient.grpc as grpcclient

    rows = next(iter(inputs.values())).shape[0]
    collected: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, rows, batch):
        request = []
        for name, value in inputs.items():
            chunk = value[start : start + batch]
            tensor = grpcclient.InferInput(name, list(chunk.shape), np_to_triton_dtype(chunk.dtype))
            tensor.set_data_from_numpy(chunk)
            request.append(tensor)
        result = client.infer(
            model,
            request,
            outputs=[grpcclient.InferRequestedOutput(n) for n in outputs],
            client_timeout=60,
        )
        for name in outputs:
            collected[name].append(result.as_numpy(name))
    return {name: np.concatenate(parts) for name, parts in collected.items()}


def verify_server(
    url: str,
    repository: Path,
    spec: BuildSpec | None = None,
    *,
    models: list[str] | None = None,
) -> VerificationReport:
    """Check every model with a golden case in ``repository`` (or ``models``) on ``url``.

    The golden cases and their tolerances live in the repository itself, so no spec is needed;
    a given ``spec`` overrides the tolerances.
    """
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from triton_deploy.runtime.repository import read_repository

    repository = Path(repository)
    if not repository.is_dir():
        raise VerificationError(f"model repository {repository} does not exist")
    cases = load_golden_cases(repository)
    if not cases:
        raise VerificationError(
            f"{repository} holds no golden cases (*/golden.npz): build it with `tdeploy build`"
        )
    names = models or sorted(cases)
    unknown = sorted(set(names) - set(cases))
    if unknown:
        raise VerificationError(
            f"no golden case for {unknown} in {repository}; it has {sorted(cases)}"
        )
    overrides: dict[str, Tolerance] = {}
    if spec is not None:
        overrides = {m.name: m.tolerance for m in spec.models} | {
            e.name: e.tolerance for e in spec.ensembles
        }
    batch_sizes = {name: m.config.max_batch_size for name, m in read_repository(repository).items()}
    client = grpcclient.InferenceServerClient(url)
    try:
        if not client.is_server_live():
            raise VerificationError(f"server at {url} is not live")
    except InferenceServerException as exc:
        raise VerificationError(f"cannot reach a Triton server at {url}: {exc.message()}") from None
    report = VerificationReport()
    for name in names:
        case = cases[name]
        tol = overrides.get(name) or Tolerance(atol=case.atol, rtol=case.rtol)
        tol_text = f"atol {tol.atol:g} rtol {tol.rtol:g}"
        if not client.is_model_ready(name):
            report.rows.append(Row(name, "*", 0.0, "not loaded on this server", True, "skipped"))
            continue
        batching = batch_sizes.get(name, 0) > 0
        try:
            served = (
                _infer(client, name, case.inputs, list(case.expected), batch_sizes.get(name, 0))
                if batching
                else _infer_one(client, name, case.inputs, list(case.expected))
            )
        except InferenceServerException as exc:
            report.rows.append(
                Row(name, "*", float("inf"), tol_text, False, f"request failed: {exc.message()}")
            )
            continue
        for output, expected in case.expected.items():
            check = parity(served[output], expected, tol.atol, tol.rtol)
            exact = output in case.exact
            note = check.get("problem") or (
                "exact match" if exact else f"{check['samples']} samples"
            )
            report.rows.append(
                Row(
                    name,
                    output,
                    check["max_abs_diff"],
                    "exact" if exact else tol_text,
                    check["passed"],
                    note,
                )
            )
    client.close()
    return report
