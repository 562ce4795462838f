"""Pre- and post-promotion analysis, built from the project's own pieces.

Before promotion, through the preview Service over gRPC:

- ``check_readiness``: the server and every model ready (``triton_deploy.clients``), and the
  versions each model serves;
- ``check_parity``: ``tdeploy verify``'s ``verify_server`` against the golden cases of the
  local build of the version being rolled out;
- ``check_slo``: a short Locust run (``triton_deploy.loadtests.run_loadtest``) against an SLO
  file, each threshold's verdict read back from the run's statistics.

After promotion, from the new color's own Triton metrics: ``PostPromotionAnalysis`` compares
each pod's counters with those at promotion (error ratio, p99).

Every check returns a ``CheckResult`` whose summary names what failed and its numbers.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._metrics import Sample, WindowStats, window_stats
from ._record import CheckResult, CheckStatus

if TYPE_CHECKING:
    from triton_deploy.repository import Tolerance

__all__ = [
    "check_metrics_reachable",
    "check_parity",
    "check_readiness",
    "check_slo",
    "evaluate_window",
]


def check_readiness(
    url: str, models: Sequence[str], *, timeout_s: float = 60.0
) -> tuple[CheckResult, dict[str, list[str]]]:
    """The preview color's server and ``models`` ready; the versions each model serves."""
    from triton_deploy.clients import ClientError, InferenceClient, NotReady

    versions: dict[str, list[str]] = {}
    try:
        with InferenceClient(url, timeout=10.0, max_connection_age_s=None) as client:
            report = client.wait_until_ready(models=models, timeout=timeout_s)
            for model in models:
                versions[model] = list(client.model_schema(model).versions)
    except NotReady as exc:
        return (
            CheckResult(
                name="readiness",
                status=CheckStatus.FAILED,
                summary=f"not ready through the preview Service after {timeout_s:g} s: {exc}",
                numbers={"url": url},
            ),
            versions,
        )
    except ClientError as exc:
        return (
            CheckResult(
                name="readiness",
                status=CheckStatus.FAILED,
                summary=f"the preview Service at {url} failed: {exc}",
                numbers={"url": url},
            ),
            versions,
        )
    listed = ", ".join(f"{m} v{'/'.join(v) or '?'}" for m, v in versions.items())
    summary = f"server ready at {url}" + (
        f"; models ready: {listed}"
        if models
        else " (no models listed: give --model or --golden to check each one)"
    )
    return (
        CheckResult(
            name="readiness",
            status=CheckStatus.PASSED,
            summary=summary,
            numbers={"url": report.url, "models": len(models)},
        ),
        versions,
    )


def check_parity(
    url: str, golden: Path, tolerances: Mapping[str, Tolerance] | None = None
) -> CheckResult:
    """``tdeploy verify`` of the preview color against the golden cases of ``golden`` (the
    local build of the version being rolled out; ``tolerances`` override theirs)."""
    from triton_deploy.errors import TritonDeployError
    from triton_deploy.repository import load_golden_cases
    from triton_deploy.runtime.verify import verify_server

    try:
        models = sorted(load_golden_cases(golden))
        report = verify_server(url, golden, tolerances=tolerances, models=models)
    except TritonDeployError as exc:
        return CheckResult(name="parity", status=CheckStatus.FAILED, summary=str(exc))
    bad = [r for r in report.rows if not r.passed or r.note == "skipped"]
    if bad:
        details = "; ".join(
            f"{r.model}.{r.output}: "
            + (
                "not loaded on the preview color"
                if r.note == "skipped"
                else f"max abs diff {r.max_abs_diff:.3g}, tolerance {r.tolerance} ({r.note})"
            )
            for r in bad[:5]
        )
        return CheckResult(
            name="parity",
            status=CheckStatus.FAILED,
            summary=f"{len({r.model for r in bad})} of {len(models)} models differ from "
            f"their golden cases: {details}",
            numbers={"models": len(models), "failed_outputs": len(bad)},
        )
    worst = max((r.max_abs_diff for r in report.rows), default=0.0)
    return CheckResult(
        name="parity",
        status=CheckStatus.PASSED,
        summary=f"{len(models)} models match their golden cases ({len(report.rows)} outputs, "
        f"largest abs diff {worst:.3g})",
        numbers={"models": len(models), "outputs": len(report.rows), "max_abs_diff": worst},
    )


def check_slo(url: str, slo: Path, *, users: int, run_time: str, reports: Path) -> CheckResult:
    """A short Locust run against the preview color, judged by ``slo``."""
    from triton_deploy.errors import TritonDeployError
    from triton_deploy.loadtests import load_slo, run_loadtest
    from triton_deploy.loadtests.config import mix_path
    from triton_deploy.loadtests.objectives import Measured, evaluate

    spec = load_slo(slo)
    environment = spec.environment or "local"
    try:
        with _stdout_to_stderr():  # locust prints its summary: stdout is for --json
            result = run_loadtest(
                host=url,
                environment=environment,
                slo_file=slo,
                mix_file=mix_path(environment),
                users=users,
                spawn_rate=float(users),
                run_time=run_time,
                reports=reports,
                build=False,
            )
    except TritonDeployError as exc:
        return CheckResult(name="slo", status=CheckStatus.FAILED, summary=f"could not run: {exc}")
    stats_csv = Path(f"{result.csv_prefix}_stats.csv")
    measured: dict[str, Measured] = {}
    total: Measured | None = None
    if stats_csv.is_file():
        with stats_csv.open() as handle:
            for row in csv.DictReader(handle):
                numbers = Measured(
                    requests=int(float(row["Request Count"])),
                    failures=int(float(row["Failure Count"])),
                    p50_ms=_num(row.get("50%")),
                    p95_ms=_num(row.get("95%")),
                    p99_ms=_num(row.get("99%")),
                    rps=_num(row.get("Requests/s")),
                )
                if row.get("Name") == "Aggregated":
                    total = numbers
                else:
                    measured[row["Name"]] = numbers
    if total is None:
        return CheckResult(
            name="slo",
            status=CheckStatus.FAILED,
            summary=f"the load test wrote no statistics (locust exit code {result.exit_code}); "
            f"see {result.html}",
        )
    verdict = evaluate(spec, measured, total, source=str(slo))
    failed = [c for c in verdict.checks if not c.passed and c.key != "exceptions_in_user_code"]
    if failed or result.exit_code != 0:
        lines = "; ".join(c.line() for c in failed[:6]) or f"locust exit code {result.exit_code}"
        return CheckResult(
            name="slo",
            status=CheckStatus.FAILED,
            summary=f"{len(failed)} of {len(verdict.checks) - 1} SLO thresholds violated "
            f"({users} users, {run_time}): {lines}",
            numbers={
                "requests": total.requests,
                "failures": total.failures,
                "report": str(result.html),
            },
        )
    return CheckResult(
        name="slo",
        status=CheckStatus.PASSED,
        summary=f"all {len(verdict.checks) - 1} SLO thresholds of {slo} met ({total.requests} "
        f"requests, p99 {total.p99_ms:g} ms, {total.rps:.1f} req/s)",
        numbers={"requests": total.requests, "p99_ms": total.p99_ms, "rps": total.rps},
    )


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what child processes write to stdout (file descriptor 1) to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "", "N/A") else float("nan")
    except ValueError:
        return float("nan")


def check_metrics_reachable(scrape: Callable[[], Mapping[str, Sample]]) -> CheckResult:
    """The new color's metrics can be read (before promotion, so that post-promotion analysis
    cannot be blind)."""
    from ._errors import RolloutError

    try:
        samples = scrape()
    except RolloutError as exc:
        return CheckResult(name="metrics", status=CheckStatus.FAILED, summary=str(exc))
    if not samples:
        return CheckResult(
            name="metrics", status=CheckStatus.FAILED, summary="no pod of the new color found"
        )
    return CheckResult(
        name="metrics",
        status=CheckStatus.PASSED,
        summary=f"Triton metrics readable on {len(samples)} pod(s)",
        numbers={"pods": len(samples)},
    )


def evaluate_window(
    baseline: Mapping[str, Sample],
    current: Mapping[str, Sample],
    *,
    max_error_ratio: float,
    min_requests: int,
    max_p99_ms: float | None,
    elapsed_s: float,
    final: bool,
) -> CheckResult:
    """The post-promotion verdict so far: FAILED as soon as a threshold is crossed with enough
    requests to judge; PASSED at the end of the window; SKIPPED (still running) otherwise."""
    stats: WindowStats = window_stats(baseline, current)
    numbers: dict[str, float | int | str | None] = {
        "seconds": round(elapsed_s, 1),
        "requests": int(stats.requests),
        "failures": int(stats.failures),
        "error_ratio": round(stats.error_ratio, 6),
        "p99_ms": stats.p99_ms,
        "mean_ms": round(stats.mean_ms, 3) if stats.mean_ms is not None else None,
        "pods": stats.pods,
    }
    worst = stats.worst_model(min_requests)
    if stats.requests >= min_requests and stats.error_ratio > max_error_ratio:
        return CheckResult(
            name="post-promotion",
            status=CheckStatus.FAILED,
            summary=f"error ratio {stats.error_ratio:.2%} > {max_error_ratio:.2%} "
            f"({int(stats.failures)} failed of {int(stats.requests)} requests in "
            f"{elapsed_s:.0f} s)",
            numbers=numbers,
        )
    if worst is not None and worst.error_ratio > max_error_ratio:
        numbers["model"] = worst.model
        return CheckResult(
            name="post-promotion",
            status=CheckStatus.FAILED,
            summary=f"model {worst.model}: error ratio {worst.error_ratio:.2%} > "
            f"{max_error_ratio:.2%} ({int(worst.failure)} failed of {int(worst.requests)})",
            numbers=numbers,
        )
    if max_p99_ms is not None and stats.requests >= min_requests:
        if stats.p99_ms is None:
            return CheckResult(
                name="post-promotion",
                status=CheckStatus.FAILED,
                summary="a p99 limit is set but Triton exports no latency summaries: add "
                "--metrics-config=summary_latencies=true to triton.extraArgs",
                numbers=numbers,
            )
        if stats.p99_ms > max_p99_ms:
            return CheckResult(
                name="post-promotion",
                status=CheckStatus.FAILED,
                summary=f"p99 {stats.p99_ms:.1f} ms > {max_p99_ms:g} ms",
                numbers=numbers,
            )
    p99 = f", p99 {stats.p99_ms:.1f} ms" if stats.p99_ms is not None else ""
    text = (
        f"error ratio {stats.error_ratio:.2%} (limit {max_error_ratio:.2%}) over "
        f"{int(stats.requests)} requests in {elapsed_s:.0f} s{p99}"
    )
    if stats.requests < min_requests:
        text += f"; fewer than {min_requests} requests: too little traffic to judge"
    return CheckResult(
        name="post-promotion",
        status=CheckStatus.PASSED if final else CheckStatus.SKIPPED,
        summary=text,
        numbers=numbers,
    )
