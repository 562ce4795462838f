"""``tdeploy bench`` and ``tdeploy tune``: thin typer wrappers over triton_deploy.bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from triton_deploy.errors import TritonDeployError

__all__ = ["bench", "tune"]

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
) -> None:
    """Measure serving performance: Triton (batching on/off, two load generators) next to the
    model in-process, a naive FastAPI service, MLServer and BentoML; MLPerf scenarios; goals."""
    if client_overhead:
        _client_overhead(models, url, batch)
        return
    from triton_deploy.bench import envs
    from triton_deploy.bench.goals import evaluate, goals_markdown, goals_table, load_goals
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
        )
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
    console.print("wrote " + ", ".join(str(p) for p in written))


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
