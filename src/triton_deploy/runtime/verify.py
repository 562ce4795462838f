"""``tdeploy verify``: the live server against the source frameworks.

The build runs each model's samples through its source framework in-process (onnxruntime,
torch, xgboost, lightgbm, the Python model's own code; ensembles step by step) and keeps the
inputs, the outputs and the tolerance as the model's golden case inside the repository
(``<repository>/<model>/golden.npz``). Verify sends those inputs to the server over gRPC and
compares every output: integers and strings exactly, floats within the tolerance. It needs
only the repository folder (from any working directory), numpy and the project's client, so a
staging endpoint can be checked from a machine without torch, with the same TLS and metadata
options as any client call (e.g. the chart's restricted staging endpoint:
``headers={"triton-grpc-protocol-<key>": "<value>"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from triton_deploy.clients import ClientError, InferenceClient, UsageError
from triton_deploy.clients._types import Headers, StrPath
from triton_deploy.errors import VerificationError
from triton_deploy.repository import (
    GoldenCase,
    Tolerance,
    load_golden_cases,
    parity,
    read_repository,
)

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


def verify_server(
    url: str,
    repository: Path,
    spec: Any = None,
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    models: list[str] | None = None,
    timeout: float = 60.0,
    headers: Headers | None = None,
    ssl: bool = False,
    root_certificates: StrPath | None = None,
    private_key: StrPath | None = None,
    certificate_chain: StrPath | None = None,
) -> VerificationReport:
    """Send every golden case of ``repository`` (or those of ``models``) to the server at
    ``url`` and compare (see the module docstring).

    The golden cases carry their tolerances, so no spec is needed; ``tolerances`` (by model)
    or a given build ``spec`` (its models' and ensembles' ``tolerance``) override them. ``timeout`` is the deadline of each request; ``headers`` and the TLS options are
    those of ``InferenceClient``. A server that cannot be reached is a ``VerificationError``; a
    bad option a ``UsageError``; a model whose request fails is a failed row of the report.
    """
    client = InferenceClient(
        url,
        timeout=timeout,
        headers=headers,
        ssl=ssl,
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )
    with client:  # the options are checked first (a bad TLS file before anything else)
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
        overrides: dict[str, Tolerance] = dict(tolerances or {})
        if spec is not None:
            overrides |= {
                m.name: Tolerance(atol=m.tolerance.atol, rtol=m.tolerance.rtol)
                for m in [*spec.models, *spec.ensembles]
            }
        try:
            if not client.is_server_live():
                raise VerificationError(f"server at {url} is not live")
        except UsageError:
            raise
        except ClientError as exc:
            raise VerificationError(f"cannot reach a Triton server at {url}: {exc}") from None
        return _verify(client, {n: cases[n] for n in names}, overrides, _batch_sizes(repository))


def _batch_sizes(repository: Path) -> dict[str, int]:
    return {name: m.config.max_batch_size for name, m in read_repository(repository).items()}


def _verify(
    client: InferenceClient,
    cases: dict[str, GoldenCase],
    overrides: dict[str, Tolerance],
    batch_sizes: dict[str, int],
) -> VerificationReport:
    report = VerificationReport()
    for name, case in cases.items():
        tol = overrides.get(name) or Tolerance(atol=case.atol, rtol=case.rtol)
        tol_text = f"atol {tol.atol:g} rtol {tol.rtol:g}"
        if not client.is_model_ready(name):
            report.rows.append(Row(name, "*", 0.0, "not loaded on this server", True, "skipped"))
            continue
        try:
            if batch_sizes.get(name, 0) > 0:
                served = client.infer_many(name, case.inputs, outputs=list(case.expected))
            else:  # no batch axis: the case is one request
                served = client.infer(name, case.inputs, outputs=list(case.expected))
        except UsageError:
            raise
        except ClientError as exc:
            message = " ".join(str(exc).split())
            report.rows.append(
                Row(name, "*", float("inf"), tol_text, False, f"request failed: {message}")
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
    return report
