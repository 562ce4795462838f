"""What client-side shadowing costs the primary call: its p99 with a shadow, next to without.

    tdeploy bench client-shadow --serve model_repository --model MODEL
    tdeploy bench client-shadow --url PRIMARY:8001 --shadow-url SHADOW:8001 \
        --model MODEL [--sample 0.01] [--rounds 7] [--duration 10] [--concurrency 4]

``--serve`` starts two local tritonservers on the repository, one as the primary and one as the
shadow (the setup of a shadow phase: the new version on its own pods). Each round runs the same
load twice back to back, with ``shadow=ShadowConfig(..., sample=...)`` and without, in
alternating order, each on a fresh client after a warm-up: ``concurrency`` threads calling
``infer`` back to back for ``duration`` seconds with the same inputs. The result per round is the
ratio of the two p99s; the verdict is on the median ratio (the goal: at most 1.10, i.e. the
primary p99 with shadowing on within 10 % of off), which cancels the slow drift of a shared
machine. Every round's numbers go to ``--out`` (JSON) with the machine they ran on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.bench.client_overhead import synthetic_inputs
from triton_deploy.clients import InferenceClient, ShadowConfig

__all__ = ["Round", "Run", "main", "measure"]

GOAL_RATIO = 1.10


@dataclass(frozen=True)
class Run:
    shadow: bool
    calls: int
    errors: int
    p50_ms: float
    p99_ms: float
    shadowed: int  # copies compared (or failed) during the run
    dropped: int


@dataclass(frozen=True)
class Round:
    on: Run
    off: Run

    @property
    def p99_ratio(self) -> float:
        return self.on.p99_ms / self.off.p99_ms


def _run(
    url: str,
    model: str,
    arrays: dict[str, Any],
    *,
    shadow: ShadowConfig | None,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> Run:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = threading.Event()
    measuring = threading.Event()
    with InferenceClient(url, shadow=shadow, timeout=30.0) as client:
        client.infer(model, arrays)  # metadata cached, channel open

        def worker(i: int) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    client.infer(model, arrays)
                except Exception:
                    errors[i] += 1
                    continue
                if measuring.is_set():
                    latencies[i].append((time.perf_counter() - started) * 1000.0)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        time.sleep(warmup_s)
        before = client.shadow_stats
        measuring.set()
        time.sleep(duration_s)
        measuring.clear()
        after = client.shadow_stats
        stop.set()
        for thread in threads:
            thread.join()
    values = np.array([v for part in latencies for v in part])
    shadowed = (after.compared - before.compared) if after and before else 0
    dropped = (after.dropped - before.dropped) if after and before else 0
    return Run(
        shadow=shadow is not None,
        calls=int(values.size),
        errors=sum(errors),
        p50_ms=float(np.percentile(values, 50)) if values.size else float("nan"),
        p99_ms=float(np.percentile(values, 99)) if values.size else float("nan"),
        shadowed=shadowed,
        dropped=dropped,
    )


def measure(
    url: str,
    shadow_url: str,
    model: str,
    *,
    sample: float = 0.01,
    rounds: int = 7,
    duration_s: float = 10.0,
    warmup_s: float = 2.0,
    concurrency: int = 4,
    batch: int = 1,
) -> list[Round]:
    """``rounds`` rounds of shadow on / off, alternating which goes first."""
    with InferenceClient(url) as client:
        arrays = synthetic_inputs(client.model_schema(model), batch)
    config = ShadowConfig(shadow_url, sample=sample, metrics=False)
    results = []
    for i in range(rounds):
        runs = {}
        for shadow in (True, False) if i % 2 == 0 else (False, True):
            runs[shadow] = _run(
                url,
                model,
                arrays,
                shadow=config if shadow else None,
                concurrency=concurrency,
                duration_s=duration_s,
                warmup_s=warmup_s,
            )
        results.append(Round(on=runs[True], off=runs[False]))
        print(
            f"round {i + 1}/{rounds}: p99 on {runs[True].p99_ms:.2f} ms, off "
            f"{runs[False].p99_ms:.2f} ms (ratio {results[-1].p99_ratio:.3f}); "
            f"{runs[True].shadowed} calls shadowed, {runs[True].dropped} dropped",
            flush=True,
        )
    return results


@contextlib.contextmanager
def _two_servers(repository: Path) -> Iterator[tuple[str, str]]:
    from triton_deploy.runtime.server import TritonServer

    primary, shadow = TritonServer(repository), TritonServer(repository)
    try:
        primary.start()
        shadow.start()
        yield primary.grpc_url, shadow.grpc_url
    finally:
        shadow.stop()
        primary.stop()


def summary(results: list[Round], sample: float) -> dict[str, Any]:
    ratios = [r.p99_ratio for r in results]
    median = statistics.median(ratios)
    return {
        "goal": f"primary p99 with shadowing (sample {sample:g}) within 10 % of off",
        "median_p99_ratio": round(median, 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
        "median_p99_on_ms": round(statistics.median(r.on.p99_ms for r in results), 3),
        "median_p99_off_ms": round(statistics.median(r.off.p99_ms for r in results), 3),
        "passed": median <= GOAL_RATIO,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdeploy bench client-shadow", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", help="primary gRPC endpoint host:port")
    parser.add_argument("--shadow-url", help="shadow gRPC endpoint host:port")
    parser.add_argument("--serve", type=Path, help="start two local servers on this repository")
    parser.add_argument("--model", required=True)
    parser.add_argument("--sample", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write every round's numbers here (JSON)")
    args = parser.parse_args(argv)
    if args.serve is None and not (args.url and args.shadow_url):
        parser.error("give --serve REPOSITORY, or --url and --shadow-url")
    with contextlib.ExitStack() as stack:
        if args.serve is not None:
            url, shadow_url = stack.enter_context(_two_servers(args.serve))
        else:
            url, shadow_url = args.url, args.shadow_url
        results = measure(
            url,
            shadow_url,
            args.model,
            sample=args.sample,
            rounds=args.rounds,
            duration_s=args.duration,
            warmup_s=args.warmup,
            concurrency=args.concurrency,
            batch=args.batch,
        )
    result = summary(results, args.sample)
    verdict = "PASS" if result["passed"] else "MISS"
    print(
        f"{verdict}: median p99 ratio (shadow on / off) {result['median_p99_ratio']:.3f} "
        f"(range {result['min_ratio']:.3f}-{result['max_ratio']:.3f} over {len(results)} "
        f"rounds; p99 on {result['median_p99_on_ms']:.2f} ms, off "
        f"{result['median_p99_off_ms']:.2f} ms); goal <= {GOAL_RATIO:.2f}"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "command": "tdeploy bench client-shadow "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "summary": result,
            "rounds": [{"on": asdict(r.on), "off": asdict(r.off)} for r in results],
        }
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0
