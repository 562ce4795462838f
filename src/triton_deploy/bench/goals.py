"""``tdeploy bench --goals``: each performance goal, measured vs target, pass or miss, and why.

Goals come from a YAML file (``goals.yaml`` beside this module by default; ``--goals-file``)
naming models and, per model, targets that override the defaults. A missed goal carries the
profile that explains it: Triton's per-stage times at the point in question (queue,
compute_input, compute_infer, compute_output, the batch it formed) and the CPU the server and
the load generator used.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
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
    TRITON_HTTP,
    TRITON_OFF,
    BenchReport,
    ModelReport,
    Point,
)

__all__ = [
    "GoalResult",
    "GoalsFile",
    "Targets",
    "evaluate",
    "failed",
    "goals_markdown",
    "goals_table",
    "load_goals",
]


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
    """A goal over the runs: the median decides; min and max show the spread."""

    model: str
    goal: str
    generator: str
    measured: float | None  # the median over runs
    target: float
    comparison: str  # ">=" or "<="
    passed: bool | None  # None: not measured
    why: str = ""
    runs: list[float] = field(default_factory=list)  # the value of each run
    compares: str = ""  # what is compared with what, over which protocol

    @property
    def status(self) -> str:
        return {True: "pass", False: "MISS", None: "not measured"}[self.passed]

    @property
    def low(self) -> float | None:
        return min(self.runs) if self.runs else None

    @property
    def high(self) -> float | None:
        return max(self.runs) if self.runs else None

    @property
    def spread_crosses(self) -> bool:
        """Some run fell on the other side of the target than the median."""
        if self.passed is None or not self.runs:
            return False
        ok = [
            (v >= self.target) if self.comparison == ">=" else (v <= self.target) for v in self.runs
        ]
        return any(o != self.passed for o in ok)

    def spread(self) -> str:
        if not self.runs:
            return ""
        return f"{self.low:.2f}–{self.high:.2f} ({len(self.runs)} runs)"


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
    runs: list[float],
    target: float,
    comparison: str,
    why: str,
    missing: str = "",
    compares: str = "",
) -> GoalResult:
    runs = [v for v in runs if v == v]  # NaN: that run did not measure it
    if not runs:
        return GoalResult(
            model, goal, generator, None, target, comparison, None, missing, compares=compares
        )
    measured = float(statistics.median(runs))
    passed = measured >= target if comparison == ">=" else measured <= target
    result = GoalResult(
        model,
        goal,
        generator,
        measured,
        target,
        comparison,
        passed,
        "" if passed else why,
        runs,
        compares,
    )
    if result.spread_crosses:
        side = "missed" if passed else "met"
        result.why = (
            f"the spread crosses the target: {sum(1 for v in runs if (v >= target) != (comparison == '>='))}"
            f" of {len(runs)} runs {side} it ({result.spread()})"
            + (f"; {why}" if not passed else "")
        )
    return result


def _per_run(
    model: ModelReport,
    a: tuple[str, str, int, int],
    b: tuple[str, str, int, int] | None,
    value: Callable[[Point, Point | None], float | None],
) -> tuple[list[float], Point | None, Point | None]:
    """``value(point_a, point_b)`` for every run that measured both (b None: only a)."""
    first = model.find_runs(*a)
    second = model.find_runs(*b) if b else {}
    out = []
    for run, pa in sorted(first.items()):
        pb = second.get(run) if b else None
        if b and pb is None:
            continue
        v = value(pa, pb)
        if v is not None:
            out.append(v)
    return out, next(iter(first.values()), None), next(iter(second.values()), None)


def _ratio(x: float, y: float) -> float | None:
    return x / y if y else None


def _model_goals(model: ModelReport, targets: Targets, goals: GoalsFile) -> list[GoalResult]:
    c = goals.concurrency
    out: list[GoalResult] = []
    generators = (OURS, PERF_ANALYZER)
    if targets.batching_gain is not None:
        for gen in generators:
            runs, on, off = _per_run(
                model,
                (TRITON, gen, c, 1),
                (TRITON_OFF, gen, c, 1),
                lambda a, b: _ratio(a.throughput, b.throughput) if b else None,
            )
            out.append(
                _check(
                    model.model,
                    f"batching on / off throughput, c={c}",
                    gen,
                    runs,
                    targets.batching_gain,
                    ">=",
                    f"on: {_profile(on)} | off: {_profile(off)}",
                    model.skipped.get(
                        f"{TRITON_OFF}, perf_analyzer c={c}", "no point at this concurrency"
                    ),
                    compares="Triton on vs off, gRPC",
                )
            )
    # the naive service speaks HTTP/JSON: it is compared with Triton over HTTP/JSON
    for target, comparison, pick in (
        (targets.naive_speedup, ">=", "throughput"),
        (targets.naive_p99_ratio, "<=", "p99"),
    ):
        if target is None:
            continue
        runs, on, _ = _per_run(
            model,
            (TRITON_HTTP, OURS, c, 1),
            (NAIVE, OURS, c, 1),
            (lambda a, b: _ratio(a.throughput, b.throughput) if b else None)
            if pick == "throughput"
            else (lambda a, b: _ratio(a.p99_ms, b.p99_ms) if b else None),
        )
        label = (
            f"vs naive FastAPI throughput, c={c}"
            if pick == "throughput"
            else f"p99 / naive p99, c={c}"
        )
        out.append(
            _check(
                model.model,
                label,
                OURS,
                runs,
                target,
                comparison,
                _profile(on),
                model.skipped.get(NAIVE, "not measured"),
                compares="Triton vs naive service, both HTTP/JSON",
            )
        )
    batch = max(1, min(goals.offline_batch, model.max_batch_size))
    if targets.ceiling_share is not None:
        for gen in generators:
            runs = []
            served_any: Point | None = None
            detail = ""
            for run, ceiling in enumerate(model.ceiling_runs):
                served = max(
                    (
                        p
                        for p in model.points
                        if p.variant == TRITON
                        and p.generator == gen
                        and p.batch == batch > 1
                        and p.run == run
                        and p.request_rate is None
                    ),
                    key=lambda p: p.samples_per_s,
                    default=None,
                )
                if served is None:
                    continue
                # the ceiling at the batch Triton formed (client batches merge further), or the
                # client batch where the generator could not see it (perf_analyzer)
                formed = max(1, round(served.avg_batch)) if served.avg_batch else batch
                value = ceiling.get(formed) or ceiling.get(batch)
                if value:
                    runs.append(served.samples_per_s / value)
                    served_any = served_any or served
                    detail = f"in-process {value:,.0f} samples/s at batch {formed}"
            out.append(
                _check(
                    model.model,
                    f"served / in-process samples/s at the formed batch, client batches of {batch}",
                    gen,
                    runs,
                    targets.ceiling_share,
                    ">=",
                    f"{detail}; served: {_profile(served_any)}",
                    model.skipped.get("in-process ceiling", "not measured"),
                    compares="Triton gRPC vs the model in-process at the batch Triton formed",
                )
            )
    if targets.overhead_ms is not None:
        # The serving path itself: without dynamic batching, so that no request waits out
        # max_queue_delay_microseconds on purpose (that wait shows in the batching-on rows).
        for gen in generators:
            singles = model.find_runs(TRITON_OFF, gen, 1)
            runs = [
                singles[r].p50_ms - lat["p50"]
                for r, lat in enumerate(model.in_process_latency_runs)
                if r in singles and "p50" in lat
            ]
            single = next(iter(singles.values()), None)
            waiting = model.find(TRITON, gen, 1)
            note = (
                f"; with batching on, p50 {waiting.p50_ms:.2f} ms (it waits for a batch)"
                if waiting
                else ""
            )
            in_process = model.in_process_latency_ms.get("p50")
            out.append(
                _check(
                    model.model,
                    "serving overhead at c=1, no batching delay (p50 served - in-process), ms",
                    gen,
                    runs,
                    targets.overhead_ms,
                    "<=",
                    f"in-process p50 {in_process or 0:.3f} ms; served: {_profile(single)}{note}",
                    model.skipped.get("in-process ceiling", "not measured"),
                    compares="Triton gRPC, batching off, vs the model in-process",
                )
            )
    if targets.alternative_speedup is not None:
        # each peer against Triton over its own protocol; the goal is met against the best
        pairs = ((MLSERVER, TRITON), (BENTOML, TRITON_HTTP))
        per_run: dict[int, float] = {}
        worst: dict[int, tuple[Point, Point]] = {}
        for peer, ours in pairs:
            mine, theirs = model.find_runs(ours, OURS, c), model.find_runs(peer, OURS, c)
            for run in mine.keys() & theirs.keys():
                ratio = _ratio(mine[run].throughput, theirs[run].throughput)
                if ratio is not None and (run not in per_run or ratio < per_run[run]):
                    per_run[run] = ratio
                    worst[run] = (mine[run], theirs[run])
        runs = [per_run[r] for r in sorted(per_run)]
        why = ""
        if worst:
            mine_p, best = worst[sorted(worst)[0]]
            why = (
                f"best alternative {best.variant} ({best.protocol}, {best.settings}): "
                f"{best.throughput:,.0f} req/s p99 {best.p99_ms:.1f} ms, formed batch "
                f"{best.avg_batch:.1f}; triton ({mine_p.protocol}): {_profile(mine_p)}"
            )
        result = _check(
            model.model,
            f"vs best of MLServer/BentoML throughput, same protocol, c={c}",
            OURS,
            runs,
            targets.alternative_speedup,
            ">=",
            why,
            "; ".join(f"{k}: {v}" for k, v in model.skipped.items() if k in (MLSERVER, BENTOML))
            or "not measured",
            compares="Triton gRPC vs MLServer gRPC; Triton HTTP/JSON vs BentoML HTTP/JSON",
        )
        if result.passed and worst:
            slower = [(m, t) for m, t in (worst[r] for r in sorted(worst)) if m.p99_ms >= t.p99_ms]
            if len(slower) * 2 > len(worst):
                m, t = slower[0]
                result.passed = False
                result.why = (
                    f"throughput met but p99 {m.p99_ms:.1f} ms is not below {t.variant}'s "
                    f"{t.p99_ms:.1f} ms in most runs"
                )
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
    for column in ("model", "goal", "generator", "median", "min–max", "target", "status"):
        table.add_column(
            column, justify="right" if column in ("median", "min–max", "target") else "left"
        )
    for r in results:
        style = {True: "green", False: "bold red", None: "yellow"}[r.passed]
        table.add_row(
            r.model,
            r.goal,
            r.generator,
            "" if r.measured is None else f"{r.measured:.2f}",
            r.spread(),
            f"{r.comparison} {r.target:g}",
            f"[{style}]{r.status}[/]" + (" (spread crosses)" if r.spread_crosses else ""),
        )
    return table


def failed(results: list[GoalResult]) -> list[GoalResult]:
    """What makes ``--strict`` fail: every MISS (a goal that was not measured is reported,
    not failed: a missing tool environment is not a slow server)."""
    return [r for r in results if r.passed is False]


def goals_markdown(results: list[GoalResult]) -> str:
    lines = [
        "| model | goal | generator | median | min–max | target | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        measured = "" if r.measured is None else f"{r.measured:.2f}"
        status = r.status + (" (spread crosses)" if r.spread_crosses else "")
        lines.append(
            f"| {r.model} | {r.goal} | {r.generator} | {measured} | {r.spread()} | "
            f"{r.comparison} {r.target:g} | {status} |"
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
