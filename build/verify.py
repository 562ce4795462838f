"""``tdeploy verify``: the live server against the source frameworks.

The build runs held-out inputs through the source framework in-process (torch, xgboost, the
shared feature and pre/post-processing code) and stores inputs and outputs as golden cases
(``.tdeploy/<repository>/<model>.npz``). Verify sends those inputs to the server over gRPC
and compares every output: integers exactly, floats within the model's tolerance from the
spec. Only numpy and tritonclient run here, so a staging endpoint can be verified from a
machine without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table
from tritonclient.utils import np_to_triton_dtype

from triton_deploy.build.golden import GoldenCase, artifacts_directory
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


def _tolerances(spec: BuildSpec) -> dict[str, Tolerance]:
    return {m.name: m.tolerance for m in spec.models} | {
        e.name: e.tolerance for e in spec.ensembles
    }


def verify_server(
    url: str, repository: Path, spec: BuildSpec, *, models: list[str] | None = None
) -> VerificationReport:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    cases_dir = artifacts_directory(repository)
    tolerances = _tolerances(spec)
    names = models or list(tolerances)
    unknown = sorted(set(names) - set(tolerances))
    if unknown:
        raise VerificationError(f"unknown model(s) {unknown}; the spec has {sorted(tolerances)}")
    client = grpcclient.InferenceServerClient(url)
    try:
        if not client.is_server_live():
            raise VerificationError(f"server at {url} is not live")
    except InferenceServerException as exc:
        raise VerificationError(f"cannot reach a Triton server at {url}: {exc.message()}") from None
    report = VerificationReport()
    batch_sizes = {m.name: m.max_batch_size for m in spec.models} | {
        e.name: e.max_batch_size for e in spec.ensembles
    }
    for name in names:
        tol = tolerances[name]
        tol_text = f"atol {tol.atol:g} rtol {tol.rtol:g}"
        path = cases_dir / f"{name}.npz"
        if not path.exists():
            raise VerificationError(
                f"no golden case for '{name}' in {cases_dir}: run `tdeploy build` first"
            )
        if not client.is_model_ready(name):
            report.rows.append(Row(name, "*", 0.0, "not loaded on this server", True, "skipped"))
            continue
        case = GoldenCase.load(path)
        try:
            served = _infer(
                client, name, case.inputs, list(case.expected), max(batch_sizes[name], 1)
            )
        except InferenceServerException as exc:
            report.rows.append(
                Row(name, "*", float("inf"), tol_text, False, f"request failed: {exc.message()}")
            )
            continue
        for output, expected in case.expected.items():
            got = served[output]
            if got.shape[1:] != expected.shape[1:] and got.ndim == expected.ndim:
                got = got[:, : expected.shape[1]]  # e.g. top-1 of a top-k output
            if output in case.exact:
                mismatches = int((got != expected).sum())
                report.rows.append(
                    Row(
                        name,
                        output,
                        float(mismatches),
                        "exact",
                        mismatches == 0,
                        f"{mismatches} mismatches" if mismatches else "exact match",
                    )
                )
            else:
                check = parity(got, expected, tol.atol, tol.rtol)
                report.rows.append(
                    Row(
                        name,
                        output,
                        check["max_abs_diff"],
                        tol_text,
                        check["passed"],
                        check.get("problem", f"{check['samples']} samples"),
                    )
                )
    client.close()
    return report
