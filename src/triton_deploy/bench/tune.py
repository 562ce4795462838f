"""``tdeploy tune MODEL --p99-ms X``: the best batching and instance settings under a latency bound.

On the local tritonserver (``--model-control-mode=explicit``), the model is reloaded through the
repository API with a config override for every point, and measured with our load generator at
the given concurrency levels. A point's score is its highest throughput whose p99 stays under
the bound (with no errors). The search is coordinate-wise, starting from the repository's own
config (the spec's, always measured first): max_queue_delay_microseconds, then instance counts,
then preferred batch sizes, then max_batch_size (when candidates are given). Every point is
printed. The winner and the spec's config are then measured again back to back, alternating,
and the winner is kept only when it still beats the spec's; it is written into the spec YAML
(comments and layout preserved by ruamel.yaml; validated with ``load_spec`` before it is
written) and the unified diff is printed.
"""

from __future__ import annotations

import difflib
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from rich.console import Console
from rich.table import Table
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.bench.loadgen import GrpcTransport, closed_loop
from triton_deploy.bench.payloads import (
    BenchError,
    ModelInfo,
    grpc_requests,
    model_info,
    sample_rows,
)
from triton_deploy.bench.stats import delta, snapshot
from triton_deploy.runtime.server import TritonServer

__all__ = ["Candidate", "TuneOptions", "TuneResult", "apply_candidate", "run_tune", "update_spec"]

DEFAULT_DELAYS = (0, 100, 500, 1000, 2000, 5000)
DEFAULT_INSTANCES = (1, 2)


@dataclass(frozen=True)
class Candidate:
    """One configuration to try."""

    max_queue_delay_microseconds: int
    preferred_batch_size: tuple[int, ...]
    max_batch_size: int
    instances: int

    def label(self) -> str:
        preferred = ",".join(map(str, self.preferred_batch_size)) or "-"
        return (
            f"delay {self.max_queue_delay_microseconds} us, preferred [{preferred}], "
            f"max batch {self.max_batch_size}, {self.instances} instance(s)"
        )


@dataclass
class Measured:
    candidate: Candidate
    stage: str
    throughput: float  # best req/s under the bound (0 when no level met it): the score
    p99_ms: float  # at that level (or the lowest p99 seen when none met it)
    measured: float  # req/s at that level, whether or not it met the bound
    concurrency: int
    avg_batch: float
    errors: int
    levels: list[dict[str, float]] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return self.throughput > 0


@dataclass
class TuneOptions:
    repository: Path
    model: str
    p99_ms: float
    spec: Path | None = None
    concurrency: list[int] = field(default_factory=lambda: [8, 32])
    seconds: float = 2.0
    delays: list[int] | None = None
    instances: list[int] | None = None
    max_batch_sizes: list[int] | None = None
    write: bool = True
    out: Path = Path("reports/tune")
    confirm_rounds: int = 2


@dataclass
class TuneResult:
    baseline: Measured
    winner: Measured
    points: list[Measured]
    diff: str = ""
    written: bool = False


def baseline_candidate(config: mc.ModelConfig) -> Candidate:
    batching = config.dynamic_batching
    instances = config.instance_group[0].count if config.instance_group else 1
    return Candidate(
        max_queue_delay_microseconds=int(batching.max_queue_delay_microseconds),
        preferred_batch_size=tuple(int(b) for b in batching.preferred_batch_size),
        max_batch_size=int(config.max_batch_size),
        instances=max(1, int(instances)),
    )


def apply_candidate(config: mc.ModelConfig, candidate: Candidate) -> mc.ModelConfig:
    """A copy of ``config`` with the candidate's batching and instance settings."""
    out = mc.ModelConfig()
    out.CopyFrom(config)
    out.max_batch_size = candidate.max_batch_size
    batching = out.dynamic_batching
    batching.max_queue_delay_microseconds = candidate.max_queue_delay_microseconds
    del batching.preferred_batch_size[:]
    batching.preferred_batch_size.extend(
        b for b in candidate.preferred_batch_size if b <= candidate.max_batch_size
    )
    if not out.instance_group:
        out.instance_group.add(count=candidate.instances)
    else:
        out.instance_group[0].count = candidate.instances
    kept = [w for w in out.model_warmup if w.batch_size <= candidate.max_batch_size]
    del out.model_warmup[:]
    out.model_warmup.extend(kept)
    return out


class _Tuner:
    def __init__(
        self, options: TuneOptions, server: TritonServer, info: ModelInfo, console: Console
    ) -> None:
        self.options = options
        self.server = server
        self.info = info
        self.console = console
        rows, self.inputs_from = sample_rows(options.repository, info)
        self.payloads = grpc_requests(info, rows)
        self.points: list[Measured] = []
        self.cache: dict[Candidate, Measured] = {}

    def load(self, candidate: Candidate) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        config = apply_candidate(self.info.config, candidate)
        text = json_format.MessageToJson(config, preserving_proto_field_name=True)
        client = grpcclient.InferenceServerClient(self.server.grpc_url)
        try:
            client.load_model(
                self.info.name,
                config=text,
                headers=self.server.admin_grpc_headers,  # the admin API is restricted
                client_timeout=300,
            )
        except InferenceServerException as exc:
            raise BenchError(
                f"tune: loading {self.info.name} with {candidate.label()} failed: {exc}"
            ) from None
        finally:
            client.close()

    def measure(self, candidate: Candidate, stage: str) -> Measured:
        self.load(candidate)
        levels = []
        for concurrency in self.options.concurrency:
            before = snapshot(self.server.grpc_url)
            result = closed_loop(
                GrpcTransport(self.server.grpc_url, channels=max(1, concurrency // 16)),
                self.payloads,
                concurrency=concurrency,
                seconds=self.options.seconds,
            )
            stats = delta(before, snapshot(self.server.grpc_url), self.info.name)
            levels.append(
                {
                    "concurrency": concurrency,
                    "throughput": result.throughput,
                    "p99_ms": result.percentile(99),
                    "errors": result.errors,
                    "avg_batch": stats.avg_batch,
                }
            )
        ok = [lv for lv in levels if lv["errors"] == 0 and lv["p99_ms"] <= self.options.p99_ms]
        best = (
            max(ok, key=lambda lv: lv["throughput"])
            if ok
            else min(levels, key=lambda lv: lv["p99_ms"])
        )
        measured = Measured(
            candidate=candidate,
            stage=stage,
            throughput=best["throughput"] if ok else 0.0,
            p99_ms=best["p99_ms"],
            measured=best["throughput"],
            concurrency=int(best["concurrency"]),
            avg_batch=best["avg_batch"],
            errors=int(sum(lv["errors"] for lv in levels)),
            levels=levels,
        )
        self.points.append(measured)
        mark = "[green]ok[/]" if measured.feasible else "[red]over the bound[/]"
        self.console.print(
            f"  {stage:9} {candidate.label():76} c={measured.concurrency:<3} "
            f"{measured.measured:8,.0f} req/s  p99 {measured.p99_ms:7.2f} ms  "
            f"batch {measured.avg_batch:5.1f}  {mark}",
            highlight=False,
            soft_wrap=True,
        )
        return measured

    def best_of(self, candidates: list[Candidate], stage: str, incumbent: Measured) -> Measured:
        best = incumbent
        for candidate in candidates:
            if candidate == incumbent.candidate:
                continue
            measured = self.measure(candidate, stage)
            if measured.throughput > best.throughput:
                best = measured
        return best


def _search(tuner: _Tuner, options: TuneOptions, base: Candidate) -> tuple[Measured, Measured]:
    baseline = tuner.measure(base, "spec")
    best = baseline
    delays = sorted(set(options.delays or DEFAULT_DELAYS) | {base.max_queue_delay_microseconds})
    best = tuner.best_of(
        [replace(best.candidate, max_queue_delay_microseconds=d) for d in delays], "delay", best
    )
    instances = sorted(set(options.instances or DEFAULT_INSTANCES) | {base.instances})
    best = tuner.best_of(
        [replace(best.candidate, instances=n) for n in instances], "instances", best
    )
    # Preferred sizes a spec can express (an empty list there means [max_batch_size]): the
    # spec's own, the largest batch only, and a ladder of powers of two up to the largest.
    mbs = best.candidate.max_batch_size
    ladder = (*(b for b in (2**k for k in range(3, 16)) if b < mbs), mbs)
    preferred = {base.preferred_batch_size, (mbs,), ladder}
    best = tuner.best_of(
        [replace(best.candidate, preferred_batch_size=p) for p in sorted(preferred)],
        "preferred",
        best,
    )
    if options.max_batch_sizes:
        best = tuner.best_of(
            [replace(best.candidate, max_batch_size=m) for m in options.max_batch_sizes],
            "max batch",
            best,
        )
    return baseline, best


def _confirm(
    tuner: _Tuner, baseline: Measured, winner: Measured, rounds: int
) -> tuple[Measured, Measured]:
    """Measure spec and winner again, alternating: a shared machine drifts between points."""
    if winner.candidate == baseline.candidate:
        return baseline, winner
    tuner.console.print("confirming: the spec's config and the winner, back to back")
    spec_runs, win_runs = [baseline], [winner]
    for i in range(rounds):
        order = [(spec_runs, baseline.candidate), (win_runs, winner.candidate)]
        for runs, candidate in order if i % 2 == 0 else order[::-1]:
            runs.append(tuner.measure(candidate, "confirm"))

    def median(runs: list[Measured]) -> Measured:
        ordered = sorted(runs, key=lambda m: m.throughput)
        return ordered[len(ordered) // 2]

    return median(spec_runs), median(win_runs)


def update_spec(spec: Path, model: str, candidate: Candidate) -> tuple[str, str]:
    """The spec text with the candidate's settings for ``model`` (before, after); comments kept."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 100
    before = spec.read_text()
    data = yaml.load(before)
    entries = [m for m in (data.get("models") or []) if m.get("name") == model]
    if not entries:
        raise BenchError(f"tune: model '{model}' is not declared in {spec} (under 'models:')")
    entry = entries[0]
    entry["max_batch_size"] = candidate.max_batch_size
    batching = entry.get("dynamic_batching")
    if batching is None:
        from ruamel.yaml.comments import CommentedMap

        batching = entry["dynamic_batching"] = CommentedMap()
    batching["max_queue_delay_microseconds"] = candidate.max_queue_delay_microseconds
    if candidate.preferred_batch_size:
        from ruamel.yaml.comments import CommentedSeq

        seq = CommentedSeq(candidate.preferred_batch_size)
        seq.fa.set_flow_style()
        batching["preferred_batch_size"] = seq
    elif "preferred_batch_size" in batching:
        del batching["preferred_batch_size"]
    groups = entry.get("instance_group")
    if groups:
        groups[0]["count"] = candidate.instances
    elif candidate.instances != 1:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        group = CommentedMap(count=candidate.instances)
        group.fa.set_flow_style()
        entry["instance_group"] = CommentedSeq([group])
        entry["instance_group"].fa.set_flow_style()
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return before, buffer.getvalue()


def _validate(text: str, spec: Path, load_spec: Callable[[Path], object] | None) -> None:
    """The edited spec through the build's own loader (given by the CLI: the bench does not
    import the build)."""
    if load_spec is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / spec.name
        candidate.write_text(text)
        load_spec(candidate)  # raises SpecError naming the key


def _plot(result: TuneResult, bound: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for m in result.points:
        for level in m.levels:
            ax.scatter(
                level["p99_ms"],
                level["throughput"],
                s=18,
                color="C0" if m.feasible else "C7",
                alpha=0.6,
            )
    for m, label, color in ((result.baseline, "spec", "C1"), (result.winner, "winner", "C2")):
        ax.scatter(
            m.p99_ms,
            m.throughput or 0,
            s=90,
            color=color,
            marker="*",
            label=f"{label}: {m.candidate.label()}",
        )
    ax.axvline(bound, color="C3", linestyle="--", label=f"p99 bound {bound:g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("p99 latency (ms)")
    ax.set_ylabel("requests/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("tdeploy tune: every point tried")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_tune(
    options: TuneOptions,
    *,
    console: Console | None = None,
    load_spec: Callable[[Path], object] | None = None,
) -> TuneResult:
    """Tune ``options.model``; ``load_spec`` (the build's) validates the edited spec."""
    console = console or Console()
    repository = Path(options.repository).resolve()
    info = model_info(repository, options.model)
    if info.is_ensemble:
        raise BenchError(
            f"tune: '{info.name}' is an ensemble; tune its composing models ({', '.join(info.members)})"
        )
    if info.max_batch_size <= 0 or not info.dynamic_batching:
        raise BenchError(
            f"tune: '{info.name}' has no dynamic_batching in its config: nothing to tune"
        )
    if options.spec is not None and not options.spec.is_file():
        raise BenchError(f"tune: spec file {options.spec} not found")
    base = baseline_candidate(info.config)
    console.print(
        f"tuning {info.name}: p99 ≤ {options.p99_ms:g} ms at concurrency "
        f"{', '.join(map(str, options.concurrency))}, {options.seconds:g} s per level"
    )
    server = TritonServer(repository, extra_args=["--model-control-mode=explicit"])
    with server:
        tuner = _Tuner(options, server, info, console)
        baseline, winner = _search(tuner, options, base)
        baseline, winner = _confirm(tuner, baseline, winner, options.confirm_rounds)
    if not winner.feasible:
        raise BenchError(
            f"tune: no configuration of {info.name} kept p99 under {options.p99_ms:g} ms; the lowest "
            f"p99 seen was {min(m.p99_ms for m in tuner.points):.2f} ms: relax the bound or lower --concurrency"
        )
    if winner.throughput <= baseline.throughput:
        winner = baseline
    result = TuneResult(baseline=baseline, winner=winner, points=tuner.points)
    table = Table(
        title=f"{info.name}: spec vs winner (p99 ≤ {options.p99_ms:g} ms)", title_justify="left"
    )
    for column in ("", "config", "req/s", "p99 ms", "concurrency", "formed batch"):
        table.add_column(column)
    for label, m in (("spec", baseline), ("winner", winner)):
        table.add_row(
            label,
            m.candidate.label(),
            f"{m.throughput:,.0f}",
            f"{m.p99_ms:.2f}",
            str(m.concurrency),
            f"{m.avg_batch:.1f}",
        )
    console.print(table)
    if winner.candidate == base:
        console.print(
            "the spec's configuration is already the best of the points tried: nothing to change"
        )
    elif options.spec is not None:
        before, after = update_spec(options.spec, info.name, winner.candidate)
        _validate(after, options.spec, load_spec)
        result.diff = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                str(options.spec),
                str(options.spec),
            )
        )
        console.print(result.diff, highlight=False, markup=False)
        if options.write:
            options.spec.write_text(after)
            result.written = True
            console.print(
                f"wrote {options.spec}; rebuild the repository (`tdeploy build`) to apply it"
            )
    else:
        console.print("no --spec given: the winner is not written anywhere")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "tune.json").write_text(json.dumps(_jsonable(result), indent=1))
    plot = _plot(result, options.p99_ms, options.out / "tune.png")
    console.print(f"wrote {options.out / 'tune.json'} and {plot}")
    return result


def _jsonable(result: TuneResult) -> dict[str, Any]:
    return asdict(result)
