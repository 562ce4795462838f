"""Workloads: what one kind of simulated client sends. The load test knows no model by name.

A workload is a class named in the task mix (``workloads.<name>.workload: module:Class``); the
generic locust user (``users.WorkloadUser``) runs one per simulated user, picking its tasks by
the mix's weights, and reports each call under the model name the task gives.

    class DigitsWorkload(Workload):
        TASKS = {"one_image": ("digits",), "image_batch": ("digits",)}   # task -> models
        DEFAULT_WEIGHTS = {"one_image": 6, "image_batch": 3}

        class Options(WorkloadOptions):                  # validated from the mix's options:
            batch_size: tuple[int, int] = (2, 16)

        @classmethod
        def prepare(cls, options, seed):                  # once per process, before users start
            digits_images(seed)

        def one_image(self) -> None:
            self.call("digits", self.client.infer, "digits", IMAGES=self.images(1))

``GoldenWorkload`` (``golden: MODEL`` in the mix) takes any model: it sends rows of the golden
cases the build kept for it (real held-out inputs), in batches of ``batch_size`` rows.

Numpy, pydantic and the client only: this module never imports locust.
"""

from __future__ import annotations

import importlib
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from triton_deploy.clients import InferenceClient

from .config import LoadTestConfigError

__all__ = [
    "GoldenWorkload",
    "Workload",
    "WorkloadOptions",
    "check_range",
    "resolve_workload",
]

#: Reports one call: ``call(name, function, *args, **kwargs)`` runs ``function`` and reports it
#: as a request named ``name`` (the model); returns its result, or ``None`` when it failed.
Caller = Callable[..., Any]


class WorkloadOptions(BaseModel):
    """Base of a workload's options (the mix's ``options:``): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_range(pair: tuple[float, float], name: str) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(pair)}")


class Workload:
    """One simulated client's traffic (see the module docstring). Subclasses define
    ``TASKS`` (task method name -> the models it calls), ``DEFAULT_WEIGHTS``, ``Options`` and
    one method per task; ``prepare`` builds shared payloads once per process."""

    TASKS: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    DEFAULT_WEIGHTS: ClassVar[Mapping[str, int]] = {}
    Options: ClassVar[type[WorkloadOptions]] = WorkloadOptions

    def __init__(
        self,
        client: InferenceClient,
        call: Caller,
        options: WorkloadOptions,
        rng: random.Random,
        seed: int,
    ) -> None:
        self.client = client
        self.call = call
        self.options = options
        self.rng = rng
        self.seed = seed

    @classmethod
    def prepare(cls, options: WorkloadOptions, seed: int) -> None:
        """Build payloads shared by every user of the process (before the run's clock starts:
        gevent is cooperative, and a second spent here inside a user stalls every request)."""

    @classmethod
    def models(cls, weights: Mapping[str, int]) -> set[str]:
        """The models the tasks with a weight above 0 call."""
        return {model for task, weight in weights.items() if weight for model in cls.TASKS[task]}


class GoldenOptions(WorkloadOptions):
    #: The model to call (set from the mix's ``golden: MODEL``).
    model: str = Field(min_length=1)
    #: Rows per request: uniform between the two (capped by the rows the golden case has).
    batch_size: tuple[
        int,
        int,
    ] = (1, 1)
    #: The built repository whose golden cases to send (default: $TDEPLOY_REPOSITORY, else
    #: ``model_repository``).
    repository: Path | None = None

    @model_validator(mode="after")
    def _valid(self) -> GoldenOptions:
        check_range(self.batch_size, "batch_size")
        if self.batch_size[0] < 1:
            raise ValueError("batch_size must be at least 1 row")
        return self


class GoldenWorkload(Workload):
    """Any model, from its golden cases: random held-out rows, ``batch_size`` per request."""

    TASKS: ClassVar[Mapping[str, tuple[str, ...]]] = {"golden": ()}
    DEFAULT_WEIGHTS: ClassVar[Mapping[str, int]] = {"golden": 1}
    Options: ClassVar[type[WorkloadOptions]] = GoldenOptions

    _cache: ClassVar[dict[tuple[str, str], dict[str, np.ndarray]]] = {}

    @classmethod
    def models(cls, weights: Mapping[str, int]) -> set[str]:  # the model comes from options
        return set()

    @staticmethod
    def repository(options: GoldenOptions) -> Path:
        return options.repository or Path(os.environ.get("TDEPLOY_REPOSITORY", "model_repository"))

    @classmethod
    def prepare(cls, options: WorkloadOptions, seed: int) -> None:
        assert isinstance(options, GoldenOptions)
        cls.inputs(options)

    @classmethod
    def inputs(cls, options: GoldenOptions) -> dict[str, np.ndarray]:
        """The golden inputs of ``options.model``; ``LoadTestConfigError`` if there are none."""
        from triton_deploy.repository import artifacts_directory, golden_case_path

        repository = cls.repository(options)
        key = (str(repository.resolve()), options.model)
        if key not in cls._cache:
            path = golden_case_path(repository, options.model)
            if not path.is_file():
                raise LoadTestConfigError(
                    f"golden: {options.model}: no golden cases in {artifacts_directory(repository)} "
                    f"(build the repository {repository} first, or set TDEPLOY_REPOSITORY)"
                )
            from triton_deploy.repository import GoldenCase

            inputs = GoldenCase.load(path).inputs
            for array in inputs.values():
                array.setflags(write=False)
            cls._cache[key] = inputs
        return cls._cache[key]

    def golden(self) -> None:
        options = self.options
        assert isinstance(options, GoldenOptions)
        inputs = self.inputs(options)
        rows = min(len(a) for a in inputs.values())
        size = min(self.rng.randint(*options.batch_size), rows)
        start = self.rng.randrange(rows - size + 1)
        batch = {name: array[start : start + size] for name, array in inputs.items()}
        self.call(options.model, self.client.infer, options.model, batch)


def resolve_workload(reference: str) -> type[Workload]:
    """``"package.module:Class"`` -> the ``Workload`` subclass; ``ValueError`` says why not."""
    module_name, sep, name = reference.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"workload must be 'package.module:Class', got {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} ({exc})") from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, Workload)):
        raise ValueError(f"{reference!r} is not a Workload subclass")
    return found
