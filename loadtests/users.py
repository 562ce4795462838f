"""``WorkloadUser``: the one locust user class, running the task mix's workloads.

Each simulated user is given one workload of the mix (``taskmix.TaskMix``), in proportion to
the workloads' weights (user 0, 1, 2, ... walk a weighted cycle, so even a handful of users
gets the proportions right), and runs that workload's tasks by their weights, pausing
``think_time_s`` between requests. Every call is reported under the model name the task gives
(``TritonGrpcUser.call``). The mix is set by ``plugin`` (``WorkloadUser.mix``) on every process
before users start, so a distributed run uses the master's mix.
"""

from __future__ import annotations

import itertools
import random
from typing import ClassVar

from locust import between, task
from locust.env import Environment

from .grpc_user import TritonGrpcUser
from .taskmix import TaskMix, WorkloadMix, workload_cycle
from .workload import Workload

__all__ = ["WorkloadUser"]

_user_numbers = itertools.count()


class WorkloadUser(TritonGrpcUser):
    """Runs one workload of ``mix`` (see the module docstring)."""

    wait_time = between(0.0, 0.05)
    mix: ClassVar[TaskMix | None] = None

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        mix = self.mix
        if mix is None:
            raise RuntimeError("WorkloadUser.mix is not set: load the locustfile with its plugin")
        number = next(_user_numbers)
        cycle = workload_cycle(mix)
        self.workload_name = cycle[number % len(cycle)]
        entry: WorkloadMix = mix.workloads[self.workload_name]
        self.rng = random.Random(mix.seed * 1_000_003 + number)
        self.workload: Workload = entry.cls(
            self.client, self.call, entry.parsed_options, self.rng, mix.seed
        )
        weights = {name: w for name, w in entry.task_weights.items() if w}
        self._tasks = [getattr(self.workload, name) for name in weights]
        self._weights = list(weights.values())

    @task
    def step(self) -> None:
        """One task of this user's workload, chosen by the tasks' weights."""
        self.rng.choices(self._tasks, self._weights)[0]()
