"""The task mix: what the simulated clients send, per environment (``loadtests/mix/<env>.yaml``).

    think_time_s: [0.0, 0.05]    # pause between one user's requests (uniform)
    seed: 0                      # seeds the payloads: the same seed sends the same data
    workloads:
      digits:                    # a name of your choosing
        weight: 1                # share of simulated users running it (0: none)
        workload: triton_deploy.build.examples.digits.payloads:DigitsWorkload
        tasks: {one_image: 6, image_batch: 3, cnn_direct: 1}   # default: the workload's
        options: {batch_size: [2, 16]}                        # checked by the workload
      my_model:
        golden: my_model         # any model: rows of the golden cases its build kept
        options: {batch_size: [1, 8]}

A workload is a ``Workload`` subclass (``workload.py``) given by import path; ``golden: MODEL``
uses the generic ``GoldenWorkload``. Task weights are relative frequencies within one
workload; ``weight`` is the share of users. Pure pydantic: no locust import here (the classes
named are imported to check the tasks and options).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .workload import GoldenWorkload, Workload, WorkloadOptions, check_range, resolve_workload

__all__ = ["TaskMix", "WorkloadMix", "workload_cycle"]

Weight = Annotated[int, Field(ge=0, le=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadMix(_Strict):
    """One workload of the mix: which class, how many users, which tasks, its options."""

    weight: Weight = 1
    #: ``package.module:Class``, a ``Workload`` subclass.
    workload: str | None = None
    #: A model name: send its golden cases (``GoldenWorkload``).
    golden: str | None = Field(default=None, min_length=1)
    #: Task weights (task method names); tasks left out keep the workload's default weight.
    tasks: dict[str, Weight] = Field(default_factory=dict)
    #: The workload's own options (its ``Options`` model).
    options: dict[str, Any] = Field(default_factory=dict)

    _cls: type[Workload] = PrivateAttr()
    _options: WorkloadOptions = PrivateAttr()

    @model_validator(mode="after")
    def _valid(self) -> WorkloadMix:
        if (self.workload is None) == (self.golden is None):
            raise ValueError("give either workload: package.module:Class or golden: MODEL")
        cls = GoldenWorkload if self.golden is not None else resolve_workload(str(self.workload))
        unknown = sorted(set(self.tasks) - set(cls.TASKS))
        if unknown:
            raise ValueError(
                f"tasks: unknown task {', '.join(map(repr, unknown))}; "
                f"{cls.__name__} has {', '.join(cls.TASKS)}"
            )
        options = dict(self.options)
        if self.golden is not None:
            options["model"] = self.golden
        self._cls = cls
        try:
            self._options = cls.Options.model_validate(options)
        except ValidationError as exc:
            raise ValueError("; ".join(_option_errors(exc))) from None
        if self.weight and not any(self.task_weights.values()):
            raise ValueError("tasks: every weight is 0 but the workload's weight is not")
        return self

    @property
    def cls(self) -> type[Workload]:
        return self._cls

    @property
    def parsed_options(self) -> WorkloadOptions:
        return self._options

    @property
    def task_weights(self) -> dict[str, int]:
        return {**self._cls.DEFAULT_WEIGHTS, **self.tasks}

    def models_called(self) -> set[str]:
        if not self.weight:
            return set()
        if self.golden is not None:
            return {self.golden}
        return self._cls.models(self.task_weights)


class TaskMix(_Strict):
    think_time_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.0, 0.05)
    #: Seeds the payloads: the same seed sends the same data.
    seed: int = 0
    workloads: dict[str, WorkloadMix] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid(self) -> TaskMix:
        check_range(self.think_time_s, "think_time_s")
        if not any(w.weight for w in self.workloads.values()):
            raise ValueError("workloads: every weight is 0: nothing would be sent")
        return self

    def models_called(self) -> set[str]:
        """The models this mix sends requests to (the names requests are reported under)."""
        return set().union(*(w.models_called() for w in self.workloads.values()))

    def active(self) -> dict[str, WorkloadMix]:
        """The workloads with users (weight above 0)."""
        return {name: w for name, w in self.workloads.items() if w.weight}


def workload_cycle(mix: TaskMix) -> list[str]:
    """The active workloads' names, each as often as its weight, interleaved (smooth weighted
    round robin): the n-th user of a process runs ``cycle[n % len(cycle)]``, so even a handful
    of users gets the proportions right."""
    weights = {name: w.weight for name, w in mix.active().items()}
    total = sum(weights.values())
    credit = dict.fromkeys(weights, 0)
    cycle: list[str] = []
    for _ in range(total):
        for name, weight in weights.items():
            credit[name] += weight
        chosen = max(credit, key=lambda n: credit[n])
        credit[chosen] -= total
        cycle.append(chosen)
    return cycle


def _option_errors(exc: ValidationError) -> list[str]:
    reasons = []
    for error in exc.errors(include_url=False):
        key = ".".join(["options", *(str(part) for part in error["loc"])])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown option"
        reasons.append(f"{key}: {message}")
    return reasons
