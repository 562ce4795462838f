"""``tdeploy bench --goals``: each performance goal, measured vs target, pass or miss, and why.

Goals come from a YAML file (``goals.yaml`` beside this module by default; ``--goals-file``)
naming models and, per model, targets that override the defaults. A missed goal carries the
profile that explains it: Triton's per-stage times at the point in question (queue,
compute_input, compute_infer, compute_output, the batch it formed) and the CPU the server and
the load generator used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.table import Table

from triton_deploy.bench.payloads import BenchError
from triton_deploy.bench.run import (
    BENTOML,
    MLSERVER,
    NAIVE,
    OURS,
    PERF_ANALYZER,
    TRITON,
    TRITON_OFF,
    BenchReport,
    ModelReport,
    Point,
)

__all__ = ["GoalResult", "GoalsFile", "Targets", "evaluate", "goals_table", "load_goals"]


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batching_gain: float | None = Field(None, gt=0)
    naive_speedup: float | None = Field(None, gt=0)
    naive_p99_ratio: float | None = Field(None, gt=0)
    ceiling_share: float | None = Field(None, gt=0)
    overhead_ms: float | None = Field(None, ge=0)
    alternative_speedup: float | None = Field(None, gt=0)


class GoalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(32, ge=1)
    offline_batch: int = Field(64, ge=1)
    defaults: Targets = Targets(
        batching_gain=2.0,
        naive_speedup=15.0,
        naive_p99_ratio=0.1,
        ceiling_share=0.7,
        overhead_ms=0.5,
        alternative_speedup=5.0,
    )
    models: dict[str, Targets] = Field(min_length=1)

    def targets(self, model: str) -> Targets:
        merged = self.defaults.model_dump()
        merged.update(
            {
                k: v
                for k, v in self.models.get(model, Targets()).model_dump().items()
                if v is not None
            }
        )
        return Targets(**merged)


def load_goals(path: Path | None = None) -> GoalsFile:
    text = (
        Path(path).read_text()
        if path is not None
        else resources.files("triton_deploy.bench").joinpath("goals.yaml").read_text()
    )
    where = path or "goals.yaml"
    try:
        return GoalsFile.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise BenchError(f"{where}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise BenchError(f"{where}: invalid goals file: {problems}") from None


@dataclass
class GoalResult:
    model: str
    goal: str
    generator: str
    measured: float | None
    target: float
    comparison: str  # ">=" or "<="
    passed: bool | None  # None: not measured
    why: str = ""

    @property
    def status(self) -> str:
        return {True: "pass", False: "MISS", None: "not measured"}[self.passed]


def _profile(point: Point | None) -> str:
    if point is None:
        return ""
    parts = [s.summary() for s in point.stages if s.requests or s.queue_us or s.compute_infer_us]
    cpu = f"generator CPU {point.client_cpu:.2f} cores"
    if point.server_cpu is not None:
        cpu += f", server CPU {point.server_cpu:.2f} cores"
        if point.throughput > 0:
            # CPU per request bounds the throughput of a machine whatever the batching does
            per_request = (point.server_cpu + point.client_cpu) / point.throughput * 1e6
            cpu += (
                f" ({per_request:.0f} us of CPU per request, server and generator: at most "
                f"{(os.cpu_count() or 1) * 1e6 / per_request:,.0f} req/s on {os.cpu_count()} cores)"
            )
    if point.client_cpu >= 0.9:
        cpu += " (the generator saturated a core)"
    if point.cpu_us_per_request:
        cpu += "; CPU per request: " + ", ".join(
            f"{name} {us:.0f} us" for name, us in point.cpu_us_per_request.items()
        )
    return "; ".join([*parts, cpu])


def _check(
    model: str,
    goal: str,
    generator: str,
    measured: float | None,
    target: float,
    comparison: str,
    why: str,
    missing: str = "",
) -> GoalResult:
    if measured is None:
        return GoalResult(model, goal, generator, None, target, comparison, None, missing)
    passed = measured >= target if comparison == ">=" else measured <= target
    return GoalResult(
        model, goal, generator, measured, target, comparison, passed, "" if passed else why
    )


def _model_goals(model: ModelReport, targets: Targets, goals: GoalsFile) -> list[GoalResult]:
    c = goals.concurrency
    out: list[GoalResult] = []
    generators = (OURS, PERF_ANALYZER)
    if targets.batching_gain is not None:
        for gen in generators:
            on, off = model.find(TRITON, gen, c), model.find(TRITON_OFF, gen, c)
            value = on.throughput / off.throughput if on and off and off.throughput else None
            out.append(
                _check(
                    model.model,
                    f"batching on / off throughput, c={c}",
                    gen,
                    value,
                    targets.batching_gain,
                    ">=",
                    f"on: {_profile(on)} | off: {_profile(off)}",
                    model.skipped.get(
                        f"{TRITON_OFF}, perf_analyzer c={c}", "no point at this concurrency"
                    ),
                )
            )
    on = model.find(TRITON, OURS, c)
    naive = model.find(NAIVE, OURS, c)
    if targets.naive_speedup is not None:
        value = on.throughput / naive.throughput if on and naive and naive.throughput else None
        out.append(
            _check(
                model.model,
                f"vs naive FastAPI throughput, c={c}",
                OURS,
                value,
                targets.naive_speedup,
                ">=",
                _profile(on),
                model.skipped.get(NAIVE, "not measured"),
            )
        )
    if targets.naive_p99_ratio is not None:
        value = on.p99_ms / naive.p99_ms if on and naive and naive.p99_ms else None
        out.append(
            _check(
                model.model,
                f"p99 / naive p99, c={c}",
                OURS,
                value,
                targets.naive_p99_ratio,
                "<=",
                _profile(on),
                model.skipped.get(NAIVE, "not measured"),
            )
        )
    batch = max(1, min(goals.offline_batch, model.max_batch_size))
    ceiling = model.ceiling.get(batch)
    if targets.ceiling_share is not None:
        for gen in generators:
            served = max(
                (
                    p
                    for p in model.points
                    if p.variant == TRITON and p.generator == gen and p.batch == batch and batch > 1
                ),
                key=lambda p: p.samples_per_s,
                default=None,
            )
            value = served.samples_per_s / ceiling if served and ceiling else None
            out.append(
                _check(
                    model.model,
                    f"served / in-process samples/s, client batches of {batch}",
                    gen,
                    value,
                    targets.ceiling_share,
                    ">=",
                    f"in-process {ceiling or 0:,.0f} samples/s; served: {_profile(served)}",
                    model.skipped.get("in-process ceiling", "not measured"),
                )
            )
    if targets.overhead_ms is not None:
        # The serving path itself: without dynamic batching, so that no request waits out
        # max_queue_delay_microseconds on purpose (that wait shows in the batching-on rows).
        in_process = model.in_process_latency_ms.get("p50")
        for gen in generators:
            single = model.find(TRITON_OFF, gen, 1)
            value = single.p50_ms - in_process if single and in_process is not None else None
            waiting = model.find(TRITON, gen, 1)
            note = (
                f"; with batching on, p50 {waiting.p50_ms:.2f} ms (it waits for a batch)"
                if waiting
                else ""
            )
            out.append(
                _check(
                    model.model,
                    "serving overhead at c=1, no batching delay (p50 served - in-process), ms",
                    gen,
                    value,
                    targets.overhead_ms,
                    "<=",
                    f"in-process p50 {in_process or 0:.3f} ms; served: {_profile(single)}{note}",
                    model.skipped.get("in-process ceiling", "not measured"),
                )
            )
    if targets.alternative_speedup is not None:
        rivals = [
            p
            for p in (model.find(MLSERVER, OURS, c), model.find(BENTOML, OURS, c))
            if p and p.throughput
        ]
        best = max(rivals, key=lambda p: p.throughput, default=None)
        value = on.throughput / best.throughput if on and best else None
        why = (
            f"best alternative {best.variant}: {best.throughput:,.0f} req/s p99 {best.p99_ms:.1f} ms"
            if best
            else ""
        )
        result = _check(
            model.model,
            f"vs best of MLServer/BentoML throughput, c={c}",
            OURS,
            value,
            targets.alternative_speedup,
            ">=",
            f"{why}; triton: {_profile(on)}",
            "; ".join(f"{k}: {v}" for k, v in model.skipped.items() if k in (MLSERVER, BENTOML))
            or "not measured",
        )
        if result.passed and on and best and on.p99_ms >= best.p99_ms:
            result.passed = False
            result.why = f"throughput met but p99 {on.p99_ms:.1f} ms is not below {best.variant}'s {best.p99_ms:.1f} ms"
        out.append(result)
    return out


def evaluate(report: BenchReport, goals: GoalsFile) -> list[GoalResult]:
    results: list[GoalResult] = []
    for name in goals.models:
        model = report.model(name)
        if model is None:
            results.append(
                GoalResult(name, "all goals", "-", None, 0, "", None, "model not benchmarked")
            )
            continue
        results.extend(_model_goals(model, goals.targets(name), goals))
    return results


def goals_table(results: list[GoalResult]) -> Table:
    table = Table(title="performance goals", title_justify="left")
    for column in ("model", "goal", "generator", "measured", "target", "status"):
        table.add_column(column, justify="right" if column in ("measured", "target") else "left")
    for r in results:
        style = {True: "green", False: "bold red", None: "yellow"}[r.passed]
        table.add_row(
            r.model,
            r.goal,
            r.generator,
            "" if r.measured is None else f"{r.measured:.2f}",
            f"{r.comparison} {r.target:g}",
            f"[{style}]{r.status}[/]",
        )
    return table


def goals_markdown(results: list[GoalResult]) -> str:
    lines = [
        "| model | goal | generator | measured | target | status |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        measured = "" if r.measured is None else f"{r.measured:.2f}"
        lines.append(
            f"| {r.model} | {r.goal} | {r.generator} | {measured} | {r.comparison} {r.target:g} | {r.status} |"
        )
    whys = [
        f"- **{r.model}, {r.goal} ({r.generator})**: {r.why}"
        for r in results
        if r.why and r.passed is not True
    ]
    return (
        "\n".join(lines)
        + ("\n\nWhy (profile at the point in question):\n\n" + "\n".join(whys) if whys else "")
        + "\n"
    )
