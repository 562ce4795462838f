"""``tdeploy verify``: the live server against the source frameworks.

The build runs held-out inputs through the source framework in-process (torch, xgboost, the
shared feature and pre/post-processing code) and stores inputs and outputs as golden cases
(``.tdeploy/<repository>/<model>.npz``). Verify sends those inputs to the server over gRPC
and compares every output: integers exactly, floats within the model's tolerance from the
spec. Only numpy and the project's client run here, so a staging endpoint can be verified from
a machine without torch, with the same TLS and metadata options as any client call (e.g. the
chart's restricted staging endpoint: ``headers={"triton-grpc-protocol-<key>": "<value>"}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from triton_deploy.build.golden import GoldenCase, artifacts_directory
from triton_deploy.build.pipeline import parity
from triton_deploy.build.spec import BuildSpec, Tolerance
from triton_deploy.clients import ClientError, InferenceClient, UsageError
from triton_deploy.clients._types import Headers, StrPath
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


def _tolerances(spec: BuildSpec) -> dict[str, Tolerance]:
    return {m.name: m.tolerance for m in spec.models} | {
        e.name: e.tolerance for e in spec.ensembles
    }


def verify_server(
    url: str,
    repository: Path,
    spec: BuildSpec,
    *,
    models: list[str] | None = None,
    timeout: float = 60.0,
    headers: Headers | None = None,
    ssl: bool = False,
    root_certificates: StrPath | None = None,
    private_key: StrPath | None = None,
    certificate_chain: StrPath | None = None,
) -> VerificationReport:
    """Send every golden case to the server at ``url`` and compare (see the module docstring).

    ``timeout`` is the deadline of each request; ``headers`` and the TLS options are those of
    ``InferenceClient``. A server that cannot be reached is a ``VerificationError``; a bad
    option a ``UsageError``; a model whose request fails is a failed row of the report.
    """
    cases_dir = artifacts_directory(repository)
    tolerances = _tolerances(spec)
    names = models or list(tolerances)
    unknown = sorted(set(names) - set(tolerances))
    if unknown:
        raise VerificationError(f"unknown model(s) {unknown}; the spec has {sorted(tolerances)}")
    client = InferenceClient(
        url,
        timeout=timeout,
        headers=headers,
        ssl=ssl,
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )
    with client:
        try:
            if not client.is_server_live():
                raise VerificationError(f"server at {url} is not live")
        except UsageError:
            raise
        except ClientError as exc:
            raise VerificationError(f"cannot reach a Triton server at {url}: {exc}") from None
        return _verify(client, names, cases_dir, tolerances)


def _verify(
    client: InferenceClient, names: list[str], cases_dir: Path, tolerances: dict[str, Tolerance]
) -> VerificationReport:
    report = VerificationReport()
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
            served = client.infer_many(name, case.inputs, outputs=list(case.expected))
        except UsageError:
            raise
        except ClientError as exc:
            message = " ".join(str(exc).split())
            report.rows.append(
                Row(name, "*", float("inf"), tol_text, False, f"request failed: {message}")
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
    return report
