"""Constant Locust load for the rollout tests: headless users calling through the project's
client over long-lived gRPC channels (locust_tiny.py), every answer logged with its time."""

from __future__ import annotations

import glob
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from harness import RolloutCluster

LOCUSTFILE = Path(__file__).resolve().parent / "locust_tiny.py"
USERS = 6  # x 20 req/s each


@dataclass
class Answer:
    t: float
    version: float | None  # None: failed
    ok: bool
    text: str


def read_answers(prefix: Path) -> list[Answer]:
    answers = []
    for path in glob.glob(f"{prefix}.*"):
        for line in Path(path).read_text().splitlines():
            stamp, rest = line.split(" ", 1)
            if rest.startswith("fail"):
                answers.append(Answer(float(stamp), None, False, rest))
                continue
            version, y, x = (float(v) for v in rest.split())
            correct = version in (1.0, 2.0) and abs(y - (x * version + version)) <= 1e-5
            answers.append(Answer(float(stamp), version, correct, rest))
    return sorted(answers, key=lambda a: a.t)


class Load:
    """Locust, headless, constant load on ``host`` until stopped; started once 100 answers
    were logged."""

    def __init__(
        self, cluster: RolloutCluster, host: str, workdir: Path, *, run_time: str = "900s"
    ) -> None:
        self.answers = workdir / "answers"
        env = dict(cluster.env, TINY_ANSWERS=str(self.answers))
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                "--only-summary", "-u", str(USERS), "-r", str(USERS), "-t", run_time,
                "--host", host, "--csv", str(workdir / "locust"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while len(read_answers(self.answers)) < 100:
            assert self.process.poll() is None, self.process.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "locust sent no load"
            time.sleep(0.5)

    def stop(self) -> list[Answer]:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        return read_answers(self.answers)


class LoadedRun(NamedTuple):
    """A command run under constant load: its result, every answer, and when it ran."""

    result: subprocess.CompletedProcess[str]
    answers: list[Answer]
    started: float  # time.time() just before the command
    finished: float


def run_under_load(
    cluster: RolloutCluster,
    host: str,
    workdir: Path,
    command: Callable[[], subprocess.CompletedProcess[str]],
    *,
    settle_s: float,
    run_time: str = "900s",
) -> LoadedRun:
    """Start the load, run ``command``, keep the load ``settle_s`` longer (answers to requests
    sent before it ended get logged), then stop the load, whatever happened."""
    load = Load(cluster, host, workdir, run_time=run_time)
    started = time.time()
    try:
        result = command()
        finished = time.time()
        time.sleep(settle_s)
    finally:
        answers = load.stop()
    return LoadedRun(result, answers, started, finished)
