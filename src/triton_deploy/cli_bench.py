"""``tdeploy bench ...`` and ``tdeploy tune``: thin typer wrappers over triton_deploy.bench.

``tdeploy bench`` is a group whose default command is ``run`` (``tdeploy bench MODEL --goals``
is ``tdeploy bench run MODEL --goals``); the other benchmarks are its sub-commands:
``overload``, ``tracing``, ``client-overhead``, ``analyzer`` (tune next to Model Analyzer) and
``readme`` (the README's performance figures from committed raw data, or measured anew).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from triton_deploy.errors import TritonDeployError

__all__ = ["bench", "bench_app", "tune"]

console = Console(stderr=True)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _int_list(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    try:
        return sorted({int(v) for value in values for v in value.split(",") if v.strip()})
    except ValueError:
        raise typer.BadParameter(f"expected integers, got {values}") from None


def _default_models(repository: Path) -> list[str]:
    from triton_deploy.runtime.repository import gpu_available, plan_view, read_repository

    loaded, _ = plan_view(read_repository(repository), gpu=gpu_available())
    return loaded


class _DefaultRun(TyperGroup):
    """``tdeploy bench ARGS`` runs ``tdeploy bench run ARGS`` unless ARGS names a sub-command."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=_DefaultRun,
    help="Measure serving performance (default: `run`); other benchmarks as sub-commands.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def bench(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Models or ensembles to measure (default: every model that loads here)."
        ),
    ] = None,
    repository: Annotated[
        Path, typer.Option(help="Model repository.", envvar="TDEPLOY_REPOSITORY")
    ] = Path("model_repository"),
    concurrency: Annotated[
        list[str] | None,
        typer.Option(
            "--concurrency", "-c", help="Concurrency levels, e.g. -c 1,8,32 (default 1..64)."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(help="Measured seconds per point.")] = 3.0,
    out: Annotated[Path, typer.Option(help="Folder for bench.json, bench.md and the PNGs.")] = Path(
        "reports/bench"
    ),
    goals: Annotated[
        bool,
        typer.Option("--goals", help="Check the performance goals: measured vs target, pass/miss."),
    ] = False,
    goals_file: Annotated[
        Path | None,
        typer.Option(help="Goals YAML (default: the one shipped with triton_deploy.bench)."),
    ] = None,
    batching_off: Annotated[
        bool, typer.Option(help="Also measure with dynamic batching off.")
    ] = True,
    perf_analyzer: Annotated[
        bool, typer.Option(help="Also drive the server with perf_analyzer.")
    ] = True,
    ceiling: Annotated[bool, typer.Option(help="Measure the model in-process.")] = True,
    naive: Annotated[bool, typer.Option(help="Measure the naive FastAPI service.")] = True,
    alternatives: Annotated[bool, typer.Option(help="Measure MLServer and BentoML.")] = True,
    scenarios: Annotated[bool, typer.Option(help="Run the MLPerf scenarios.")] = True,
    server_p99_ms: Annotated[
        float, typer.Option(help="p99 bound of the MLPerf Server scenario, in ms.")
    ] = 10.0,
    offline_batch: Annotated[
        int, typer.Option(help="Client batch size of the Offline scenario.")
    ] = 64,
    queue_policy: Annotated[
        bool, typer.Option(help="Add a bounded queue policy to every batching model first.")
    ] = False,
    setup: Annotated[
        bool,
        typer.Option(
            help="Create missing tool environments (perf_analyzer, MLServer, BentoML) first."
        ),
    ] = False,
    client_overhead: Annotated[
        bool,
        typer.Option(
            "--client-overhead",
            help="Instead: the client library's cost vs raw tritonclient against --url (one MODEL).",
        ),
    ] = False,
    url: Annotated[
        str, typer.Option(help="--client-overhead: the server.", envvar="TDEPLOY_URL")
    ] = "localhost:8001",
    batch: Annotated[int, typer.Option(help="--client-overhead: rows per request.")] = 8,
    runs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Repeat every measurement this many times, alternating the order; goals are "
            "the median (with min–max). 5 or more for figures people should trust.",
        ),
    ] = 1,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="With --goals: exit 3 when a goal is missed (its median)."),
    ] = False,
    raw: Annotated[
        Path | None,
        typer.Option(help="Also write the raw data (every run's points, the host) as this JSON."),
    ] = None,
) -> None:
    """Measure serving performance: Triton (batching on/off, gRPC and HTTP, two load
    generators) next to the model in-process, a naive FastAPI service, MLServer and BentoML;
    MLPerf scenarios; goals, each the median of --runs alternating runs."""
    if client_overhead:
        _client_overhead(models, url, batch)
        return
    if strict and not (goals or goals_file):
        raise _fail(TritonDeployError("--strict checks goals: give --goals (or --goals-file)"))
    from triton_deploy.bench import envs
    from triton_deploy.bench.environment import describe, host
    from triton_deploy.bench.goals import evaluate, failed, goals_markdown, goals_table, load_goals
    from triton_deploy.bench.report import tables, write_report
    from triton_deploy.bench.run import DEFAULT_CONCURRENCY, BenchOptions, run_bench

    try:
        if setup:
            for name, env in envs.ENVIRONMENTS.items():
                if (name == "perf_analyzer" and perf_analyzer) or (
                    name != "perf_analyzer" and alternatives
                ):
                    env.create(log=console.print)
        goal_spec = load_goals(goals_file) if goals or goals_file else None
        chosen = list(
            models or (list(goal_spec.models) if goal_spec else _default_models(repository))
        )
        levels = _int_list(concurrency) or (
            sorted({1, goal_spec.concurrency}) if goal_spec else list(DEFAULT_CONCURRENCY)
        )
        options = BenchOptions(
            repository=repository,
            models=chosen,
            concurrency=levels,
            seconds=seconds,
            batching_off=batching_off,
            perf_analyzer=perf_analyzer,
            ceiling=ceiling,
            naive=naive,
            alternatives=alternatives,
            scenarios=scenarios,
            offline_batch=goal_spec.offline_batch if goal_spec else offline_batch,
            server_p99_ms=server_p99_ms,
            queue_policy=queue_policy,
            runs=runs,
            compare_concurrency=goal_spec.concurrency if goal_spec else None,
        )
        console.print(f"host: {describe(host())}", highlight=False)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("starting", total=None)

            def step(total: int, description: str) -> None:
                progress.update(task, total=total, description=description)
                progress.advance(task)

            report = run_bench(options, progress=step)
            total = progress.tasks[0].total or 0
            progress.update(task, description="done", completed=total)
    except TritonDeployError as exc:
        raise _fail(exc) from None
    printer = Console(width=max(Console().width, 160))
    for table in tables(report):
        printer.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    written = write_report(report, out)
    if goal_spec is not None:
        results = evaluate(report, goal_spec)
        printer.print(goals_table(results))
        for r in results:
            if r.why and r.passed is not True:
                console.print(
                    f"[bold]{r.model}[/], {r.goal} ({r.generator}): {r.why}", highlight=False
                )
        goals_path = out / "goals.md"
        goals_path.write_text(goals_markdown(results))
        written.append(goals_path)
    if raw is not None:
        from triton_deploy.bench.rawdata import write_raw

        written.append(
            write_raw(report, raw, goals=evaluate(report, goal_spec) if goal_spec else None)
        )
    console.print("wrote " + ", ".join(str(p) for p in written))
    if goal_spec is not None and strict:
        bad = failed(results)
        if bad:
            console.print(
                f"[bold red]--strict:[/] {len(bad)} goal(s) missed: "
                + "; ".join(f"{r.model} {r.goal} ({r.generator}): {r.status}" for r in bad),
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(code=3)


def _client_overhead(models: list[str] | None, url: str, batch: int) -> None:
    from triton_deploy.bench.client_overhead import measure_overhead, run_bench

    if not models or len(models) != 1:
        raise _fail(TritonDeployError("--client-overhead takes exactly one MODEL"))
    model = models[0]
    try:
        best = measure_overhead(url, model=model, batch=batch)
        comparisons = run_bench(url, model=model, batch=batch, rounds=4, duration=1.0)
    except TritonDeployError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"{model}, batch {batch}: client-side cost per call, transport excluded: tritonclient "
        f"{best['raw']:.1f} us, triton_deploy {best['ours']:.1f} us (+{best['ours'] - best['raw']:.1f} us)"
    )
    for c in comparisons:
        typer.echo(
            f"{c.mode}: tritonclient {c.raw.requests_per_s:,.0f} req/s, triton_deploy "
            f"{c.ours.requests_per_s:,.0f} req/s ({-c.loss:+.1%}, median of {len(c.ratios)} paired rounds)"
        )


def tune(
    model: Annotated[str, typer.Argument(help="The model to tune (any model of the repository).")],
    p99_ms: Annotated[float, typer.Option("--p99-ms", help="The p99 latency bound, in ms.")],
    repository: Annotated[
        Path, typer.Option(help="Model repository.", envvar="TDEPLOY_REPOSITORY")
    ] = Path("model_repository"),
    spec: Annotated[
        Path | None,
        typer.Option(
            help="Spec YAML to write the winner into (shows the diff).", envvar="TDEPLOY_SPEC"
        ),
    ] = None,
    concurrency: Annotated[
        list[str] | None,
        typer.Option(
            "--concurrency", "-c", help="Load levels to measure each point at (default 8,32)."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(help="Measured seconds per point.")] = 2.0,
    delays: Annotated[
        list[str] | None, typer.Option(help="max_queue_delay_microseconds values to try.")
    ] = None,
    instances: Annotated[list[str] | None, typer.Option(help="Instance counts to try.")] = None,
    max_batch_sizes: Annotated[
        list[str] | None, typer.Option(help="max_batch_size values to try.")
    ] = None,
    write: Annotated[
        bool, typer.Option(help="Write the winner into --spec (else only show the diff).")
    ] = True,
    out: Annotated[Path, typer.Option(help="Folder for tune.json and tune.png.")] = Path(
        "reports/tune"
    ),
) -> None:
    """Sweep batching delay, preferred/max batch sizes and instance counts on the local server;
    pick the highest throughput whose p99 stays under the bound; write it into the spec."""
    from triton_deploy.bench.tune import TuneOptions, run_tune
    from triton_deploy.build.spec import load_spec

    options = TuneOptions(
        repository=repository,
        model=model,
        p99_ms=p99_ms,
        spec=spec,
        concurrency=_int_list(concurrency) or [8, 32],
        seconds=seconds,
        delays=_int_list(delays),
        instances=_int_list(instances),
        max_batch_sizes=_int_list(max_batch_sizes),
        write=write,
        out=out,
    )
    try:
        run_tune(options, console=Console(width=max(Console().width, 160)), load_spec=load_spec)
    except TritonDeployError as exc:
        raise _fail(exc) from None


_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _passthrough(module: str, doc: str) -> Callable[[typer.Context], None]:
    """A sub-command that hands its arguments to ``triton_deploy.bench.<module>.main``."""

    def command(ctx: typer.Context) -> None:
        benchmark = importlib.import_module(f"triton_deploy.bench.{module}")
        raise typer.Exit(code=benchmark.main(list(ctx.args)))

    command.__doc__ = doc
    return command


bench_app.command("run")(bench)
for _name, _module, _doc in (
    ("overload", "overload", "Overload protection and graceful drain on the real server (options: --help)."),
    ("tracing", "tracing", "What tracing (the inference log) costs, per --trace setting (options: --help)."),
    ("client-overhead", "client_overhead", "The client library's cost next to raw tritonclient (options: --help)."),
    ("client-shadow", "client_shadow", "What client-side shadowing costs the primary call's p99 (options: --help)."),
    ("analyzer", "analyzer", "tdeploy tune next to NVIDIA's Model Analyzer on the same model (options: --help)."),
    ("readme", "rawdata", "The README's performance table and plots: from committed raw data, or measured anew."),
):  # fmt: skip
    bench_app.command(_name, context_settings=_PASSTHROUGH, add_help_option=False)(
        _passthrough(_module, _doc)
    )
