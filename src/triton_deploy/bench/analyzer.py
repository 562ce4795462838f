"""``tdeploy tune`` next to NVIDIA's Triton Model Analyzer, on the same model and machine.

    tdeploy bench analyzer [--repository model_repository] [--model ctr_xgb] [--p99-ms 25]
                           [-c 8,32] [--out docs/performance/tune_vs_model_analyzer.json]

1. ``tdeploy tune`` (nothing written to the spec) with the bound and the concurrency levels;
2. Model Analyzer (``triton-model-analyzer`` in its own environment, ``make bench-envs``):
   ``profile`` in remote launch mode against a local tritonserver in explicit model control,
   quick search, the same p99 bound (``--latency-budget``) and concurrency range, the model
   ``cpu_only``, perf_analyzer 2.51 from its own environment (``--perf-analyzer-path``).
   It is given the model without its ``preferred_batch_size`` list and warm-up samples
   (``analyzer_repository``): its quick search starts at ``max_batch_size`` 1 and keeps both in
   every variant, so with the spec's it skips or fails to load every variant and profiles the
   default configuration alone;
3. each tool's best configuration loaded again and re-measured by the same load generator
   (our closed loop, the same levels and bound), alternating, with the wall time each tool
   took. If Model Analyzer fails, the exact command and its error are kept instead.

Writes one JSON (the host, the commands, per tool: configuration, req/s under the bound, p99,
wall time) that ``tdeploy bench readme`` turns into the README's comparison table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import text_format
from rich.console import Console
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.bench.environment import host
from triton_deploy.bench.envs import environment
from triton_deploy.bench.payloads import BenchError, model_info
from triton_deploy.bench.tune import (
    Candidate,
    TuneOptions,
    _Tuner,
    baseline_candidate,
    run_tune,
)
from triton_deploy.repository import read_config
from triton_deploy.runtime.server import TritonServer

__all__ = ["analyzer_command", "analyzer_repository", "best_analyzer_config", "main"]


def analyzer_repository(repository: Path, model: str, work: Path) -> Path:
    """A repository holding ``model`` alone, for Model Analyzer: its config without
    ``dynamic_batching.preferred_batch_size`` and ``model_warmup`` (Model Analyzer's quick
    search keeps both in every variant it makes: a variant whose maximum batch is below the
    largest preferred size is skipped as illegal, one below a warm-up sample's batch fails to
    load); every other file is a link to the original."""
    source = repository / model
    config_path = source / "config.pbtxt"
    if not config_path.is_file():
        raise BenchError(f"{config_path} not found: is {model!r} a model of {repository}?")
    config = read_config(config_path)
    if config.HasField("dynamic_batching"):
        del config.dynamic_batching.preferred_batch_size[:]
    # warm-up samples at the spec's largest batch fail every variant with a smaller maximum
    del config.model_warmup[:]
    target = work / "repository" / model
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != "config.pbtxt":
            (target / entry.name).symlink_to(entry.resolve())
    (target / "config.pbtxt").write_text(text_format.MessageToString(config))
    return target.parent


def analyzer_command(
    *,
    binary: Path,
    repository: Path,
    model: str,
    server: TritonServer,
    p99_ms: float,
    concurrency: list[int],
    perf_analyzer: Path,
    work: Path,
) -> list[str]:
    """Model Analyzer's profile command for ``model`` against ``server`` (remote mode)."""
    config = work / "profile.yaml"
    config.write_text(yaml.safe_dump({"profile_models": {model: {"cpu_only": True}}}))
    return [
        str(binary), "profile",
        "--config-file", str(config),
        "--model-repository", str(repository),
        "--triton-launch-mode", "remote",
        "--triton-grpc-endpoint", server.grpc_url,
        "--triton-http-endpoint", server.http_url.removeprefix("http://"),
        "--triton-metrics-url", server.metrics_url,
        "--client-protocol", "grpc",
        "--run-config-search-mode", "quick",
        "--latency-budget", f"{p99_ms:g}",
        "--run-config-search-min-concurrency", str(min(concurrency)),
        "--run-config-search-max-concurrency", str(max(concurrency)),
        "--perf-analyzer-path", str(perf_analyzer),
        "--output-model-repository-path", str(work / "variants"),
        "--override-output-model-repository",
        "--export-path", str(work / "export"),
        "--checkpoint-directory", str(work / "checkpoints"),
        "--skip-detailed-reports",
    ]  # fmt: skip


def best_analyzer_config(work: Path, model: str) -> tuple[str, mc.ModelConfig, int]:
    """The configuration Model Analyzer ranked first (its summary CSV, then the variant's
    config.pbtxt in its output repository), and how many configurations its summary holds."""
    import csv

    results = sorted((work / "export").rglob("metrics-model-inference.csv"))
    if not results:
        raise BenchError(f"Model Analyzer wrote no results under {work / 'export'}")
    rows = list(csv.DictReader(results[0].open()))
    if not rows:
        raise BenchError(f"Model Analyzer's {results[0]} is empty")
    key = next(k for k in rows[0] if k.lower().startswith("model config"))
    name = rows[0][key].strip()
    path = work / "variants" / name / "config.pbtxt"
    if not path.exists():
        raise BenchError(f"Model Analyzer's best configuration {name}: {path} missing")
    config = read_config(path)
    config.name = model
    return name, config, len({row[key].strip() for row in rows})


def _run_analyzer(
    args: argparse.Namespace, repository: Path, console: Console
) -> tuple[dict[str, Any], Candidate | None]:
    env = environment("model_analyzer")
    pa_env = environment("perf_analyzer")
    entry: dict[str, Any] = {"tool": "Model Analyzer (quick search)"}
    for needed in (env, pa_env):
        if not needed.ready():
            entry.update(error=needed.missing_reason(), wall_s=0.0)
            return entry, None
    with tempfile.TemporaryDirectory(prefix="tdeploy-ma-") as tmp:
        work = Path(tmp)
        repository = analyzer_repository(repository, args.model, work / "source")
        # Remote mode: Model Analyzer loads each variant under the model's own name with a
        # config override, from the server's repository. It loads through the model-repository
        # API and cannot send a header: this local, loopback-only server leaves the admin APIs
        # open (restrict_admin False); `tdeploy serve` and the chart keep them behind the key.
        server = TritonServer(
            repository, extra_args=["--model-control-mode=explicit"], restrict_admin=False
        )
        with server:
            command = analyzer_command(
                binary=env.binary,
                repository=repository,
                model=args.model,
                server=server,
                p99_ms=args.p99_ms,
                concurrency=args.concurrency,
                perf_analyzer=pa_env.binary,
                work=work,
            )
            entry["command"] = shlex.join(command)
            console.print(f"$ {entry['command']}", highlight=False, soft_wrap=True)
            began = time.monotonic()
            try:
                done = subprocess.run(
                    command,
                    env=pa_env.environment()
                    | {"PATH": f"{env.path / 'bin'}:{pa_env.path / 'bin'}"},
                    capture_output=True,
                    text=True,
                    timeout=args.analyzer_timeout,
                    cwd=work,
                )
            except subprocess.TimeoutExpired:
                entry.update(
                    error=f"ran past {args.analyzer_timeout} s", wall_s=time.monotonic() - began
                )
                return entry, None
            entry["wall_s"] = time.monotonic() - began
            log = (done.stdout + done.stderr).strip().splitlines()
            # what it measured, in its own words (the lines naming each configuration)
            entry["log"] = [line for line in log if "Profiling " in line or "config" in line][-40:]
            if done.returncode != 0:
                entry["error"] = f"exit {done.returncode}: " + " | ".join(log[-6:])
                return entry, None
            try:
                name, config, entry["configurations"] = best_analyzer_config(work, args.model)
            except BenchError as exc:
                entry["error"] = f"{exc}; its output ended: " + " | ".join(log[-4:])
                return entry, None
        entry["variant"] = name
        return entry, baseline_candidate(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdeploy bench analyzer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--model", default="ctr_xgb")
    parser.add_argument("--p99-ms", type=float, default=25.0)
    parser.add_argument(
        "-c", "--concurrency", type=lambda v: [int(x) for x in v.split(",")], default=[8, 32]
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per measured point")
    parser.add_argument("--rounds", type=int, default=5, help="re-measurements per winner")
    parser.add_argument("--analyzer-timeout", type=int, default=3600)
    parser.add_argument(
        "--out", type=Path, default=Path("docs/performance/tune_vs_model_analyzer.json")
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    repository = args.repository.resolve()
    machine = host()
    tools: list[dict[str, Any]] = []
    winners: dict[str, Candidate] = {}

    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="tdeploy-tune-") as tmp:
            tuned = run_tune(
                TuneOptions(
                    repository=repository,
                    model=args.model,
                    p99_ms=args.p99_ms,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    write=False,
                    out=Path(tmp),
                ),
                console=Console(file=io.StringIO()),
            )
        tools.append(
            {
                "tool": "tdeploy tune",
                "wall_s": time.monotonic() - began,
                "configurations": len({m.candidate.label() for m in tuned.points}),
                "measurements": len(tuned.points),
            }
        )
        winners["tdeploy tune"] = tuned.winner.candidate
    except BenchError as exc:
        tools.append(
            {"tool": "tdeploy tune", "wall_s": time.monotonic() - began, "error": str(exc)}
        )

    entry, candidate = _run_analyzer(args, repository, console)
    tools.append(entry)
    if candidate is not None:
        winners[entry["tool"]] = candidate

    # both winners again, the same generator and levels, alternating
    info = model_info(repository, args.model)
    server = TritonServer(repository, extra_args=["--model-control-mode=explicit"])
    options = TuneOptions(
        repository=repository,
        model=args.model,
        p99_ms=args.p99_ms,
        concurrency=args.concurrency,
        seconds=args.seconds,
    )
    measured: dict[str, list[Any]] = {name: [] for name in winners}
    with server, contextlib.redirect_stdout(io.StringIO()):
        tuner = _Tuner(options, server, info, Console(file=io.StringIO()))
        for round_ in range(args.rounds):
            order = list(winners) if round_ % 2 == 0 else list(winners)[::-1]
            for name in order:
                measured[name].append(tuner.measure(winners[name], "re-measure"))
    for tool in tools:
        runs = measured.get(tool["tool"])
        if not runs:
            continue
        ordered = sorted(runs, key=lambda m: m.throughput)
        median = ordered[len(ordered) // 2]
        tool.update(
            config=winners[tool["tool"]].label(),
            throughput=median.throughput,
            throughput_runs=[m.throughput for m in runs],
            p99_ms=median.p99_ms,
            concurrency=median.concurrency,
        )
    data = {
        "schema": 1,
        "command": "tdeploy bench analyzer " + shlex.join(argv or []),
        "host": machine,
        "runs": args.rounds,
        "model": args.model,
        "p99_bound_ms": args.p99_ms,
        "concurrency": args.concurrency,
        "model_analyzer_command": next((t.get("command") for t in tools if "command" in t), ""),
        "tools": tools,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1, default=str) + "\n")
    for tool in tools:
        if tool.get("error"):
            console.print(f"{tool['tool']}: could not run: {tool['error']}", highlight=False)
        else:
            console.print(
                f"{tool['tool']}: {tool['config']}: {tool['throughput']:,.0f} req/s, p99 "
                f"{tool['p99_ms']:.2f} ms (re-measured), found in {tool['wall_s']:.0f} s",
                highlight=False,
            )
    console.print(f"wrote {args.out}")
    return 0
