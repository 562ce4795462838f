"""Client-side shadow traffic: a sampled copy of calls to a second endpoint, answers compared.

A gateway's RequestMirror sends copies of requests to a new version but throws its answers
away; the client still has both answers, so it can compare them:

    from triton_deploy.clients import InferenceClient, ShadowConfig, Tolerance

    shadow = ShadowConfig("triton-preview.ml.svc:8001", sample=0.01,
                          tolerances={"ctr_xgb": Tolerance(atol=1e-6, rtol=1e-5)})
    with InferenceClient("triton.ml.svc:8001", shadow=shadow) as client:
        client.infer("ctr_xgb", input__0=features)       # the primary's answer, as always
        client.shadow_report()                           # compared, divergent, worst diffs

A sampled call is copied, after the primary answered, to the shadow endpoint in the background:
it never delays or fails the primary call (at most ``max_in_flight`` copies at once; a sample
beyond that is dropped and counted). Each output is compared with the model's tolerance, as the
build's golden cases are: floating-point outputs within ``atol + rtol * |primary|`` element by
element (numpy's ``isclose``, NaN equal to NaN), any other dtype exactly. Each copy ends as
``match``, ``divergent`` (an output beyond the tolerance, a missing output or another shape) or
``error`` (the shadow failed where the primary answered), counted per model with the worst
absolute difference per output; divergences and errors are logged (WARNING, at most one line
per model every ``log_interval_s``) on the ``triton_deploy.clients.shadow`` logger; with
``prometheus_client`` installed, counters too (``metrics=True``):

    tdeploy_client_shadow_comparisons_total{model, outcome}   match | divergent | error
    tdeploy_client_shadow_dropped_total{model}                 samples not sent (too many in flight)
    tdeploy_client_shadow_max_abs_diff{model, output}          worst absolute difference so far

``tdeploy rollout --strategy shadow --shadow-metrics URL`` reads these counters as a check.
The shadow is called without a model version (the shadow endpoint serves its own versions),
without retries, with ``timeout``.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._errors import UsageError
from ._types import Array, OutputMap

__all__ = [
    "METRIC_COMPARISONS",
    "METRIC_DROPPED",
    "METRIC_MAX_ABS_DIFF",
    "ModelShadowStats",
    "ShadowConfig",
    "ShadowRecorder",
    "ShadowReport",
    "Tolerance",
    "compare_outputs",
]

METRIC_COMPARISONS = "tdeploy_client_shadow_comparisons"
METRIC_DROPPED = "tdeploy_client_shadow_dropped"
METRIC_MAX_ABS_DIFF = "tdeploy_client_shadow_max_abs_diff"

logger = logging.getLogger("triton_deploy.clients.shadow")


def _nonnegative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise UsageError(f"{name} must be a number >= 0, got {value!r}")
    if math.isinf(value):
        raise UsageError(f"{name} must be finite, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far a floating-point output may be from the primary's: ``atol + rtol * |primary|``
    (give the model's own, e.g. its golden case's ``atol``/``rtol``)."""

    atol: float = 1e-5
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        _nonnegative(self.atol, "Tolerance.atol")
        _nonnegative(self.rtol, "Tolerance.rtol")


@dataclass(frozen=True)
class ShadowConfig:
    """Where and how often calls are shadowed; see the module docstring.

    - ``url``: the shadow endpoint, ``host:port`` (e.g. the preview Service of a release).
    - ``sample``: the share of calls copied, from 0 to 1 (0.01: one call in a hundred).
    - ``tolerance``: the default ``Tolerance``; ``tolerances``: per model name.
    - ``timeout``: deadline of a shadow call in seconds.
    - ``max_in_flight``: shadow calls running at once; a sample beyond is dropped (counted).
    - ``metrics``: export prometheus_client counters when the package is installed;
      ``registry``: the prometheus_client registry (default: the global one).
    - ``log_interval_s``: at most one divergence log line per model this often.
    """

    url: str
    sample: float = 0.01
    tolerance: Tolerance = field(default_factory=Tolerance)
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    timeout: float = 10.0
    max_in_flight: int = 4
    metrics: bool = True
    registry: Any = None
    log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url or "://" in self.url:
            raise UsageError(
                f"ShadowConfig.url must be host:port of the shadow's gRPC endpoint, got {self.url!r}"
            )
        if not 0 <= _nonnegative(self.sample, "ShadowConfig.sample") <= 1:
            raise UsageError(f"ShadowConfig.sample must be between 0 and 1, got {self.sample!r}")
        if not isinstance(self.tolerance, Tolerance):
            raise UsageError(f"ShadowConfig.tolerance must be a Tolerance, got {self.tolerance!r}")
        bad = [k for k, v in dict(self.tolerances).items() if not isinstance(v, Tolerance)]
        if bad:
            raise UsageError(f"ShadowConfig.tolerances[{bad[0]!r}] must be a Tolerance")
        if not _nonnegative(self.timeout, "ShadowConfig.timeout") > 0:
            raise UsageError(f"ShadowConfig.timeout must be > 0 seconds, got {self.timeout!r}")
        count = self.max_in_flight
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UsageError(f"ShadowConfig.max_in_flight must be an integer >= 1, got {count!r}")
        _nonnegative(self.log_interval_s, "ShadowConfig.log_interval_s")

    def tolerance_for(self, model: str) -> Tolerance:
        return self.tolerances.get(model, self.tolerance)


def _exact(array: Array) -> bool:
    return not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(
        array.dtype, np.complexfloating
    )


def compare_outputs(
    primary: Mapping[str, Array], shadow: Mapping[str, Array], tolerance: Tolerance
) -> tuple[bool, dict[str, float], list[str]]:
    """(diverged, worst absolute difference per output, what differs, one line per output).

    A missing output or another shape diverges (difference ``inf``); integer, boolean and
    string outputs must be equal; floating-point ones within the tolerance."""
    worst: dict[str, float] = {}
    problems: list[str] = []
    for name, expected in primary.items():
        got = shadow.get(name)
        if got is None:
            worst[name] = math.inf
            problems.append(f"output {name!r} missing")
            continue
        if got.shape != expected.shape:
            worst[name] = math.inf
            problems.append(f"output {name!r} shape {list(got.shape)} != {list(expected.shape)}")
            continue
        if _exact(expected) or _exact(got):
            unequal = int(np.count_nonzero(got != expected))
            worst[name] = 0.0 if not unequal else math.inf
            if expected.dtype.kind in "biu" and got.dtype.kind in "biu" and unequal:
                worst[name] = float(np.max(np.abs(got.astype(np.float64) - expected)))
            if unequal:
                problems.append(f"output {name!r}: {unequal} of {expected.size} elements differ")
            continue
        a = expected.astype(np.float64, copy=False)
        b = got.astype(np.float64, copy=False)
        diff = np.abs(b - a)
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, diff)
        worst[name] = float(np.nanmax(diff, initial=0.0)) if diff.size else 0.0
        if np.isnan(diff).any():
            worst[name] = math.inf
        close = np.isclose(b, a, atol=tolerance.atol, rtol=tolerance.rtol, equal_nan=True)
        beyond = int(close.size - np.count_nonzero(close))
        if beyond:
            problems.append(
                f"output {name!r}: {beyond} of {close.size} elements beyond atol "
                f"{tolerance.atol:g} + rtol {tolerance.rtol:g}, max abs diff {worst[name]:.4g}"
            )
    return bool(problems), worst, problems


@dataclass
class ModelShadowStats:
    """One model's shadow comparisons so far."""

    compared: int = 0
    divergent: int = 0
    errors: int = 0
    dropped: int = 0
    #: Output -> the largest absolute difference seen (``inf``: missing, other shape, NaN).
    worst: dict[str, float] = field(default_factory=dict)
    #: What the last divergence or error was.
    last_problem: str | None = None

    @property
    def matched(self) -> int:
        return self.compared - self.divergent - self.errors


@dataclass(frozen=True)
class ShadowReport:
    """What ``client.shadow_report()`` returns: the endpoint and each model's stats (copies)."""

    url: str
    models: Mapping[str, ModelShadowStats]

    @property
    def compared(self) -> int:
        return sum(m.compared for m in self.models.values())

    @property
    def divergent(self) -> int:
        return sum(m.divergent for m in self.models.values())

    @property
    def errors(self) -> int:
        return sum(m.errors for m in self.models.values())

    @property
    def dropped(self) -> int:
        return sum(m.dropped for m in self.models.values())


class _Metrics:
    """The prometheus_client counters, one set per registry (several clients share it)."""

    _made: ClassVar[dict[int, _Metrics]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        kwargs: dict[str, Any] = {} if registry is None else {"registry": registry}
        self.comparisons = Counter(
            METRIC_COMPARISONS,
            "Shadow copies of calls compared with the primary's answer, by outcome",
            ["model", "outcome"],
            **kwargs,
        )
        self.dropped = Counter(
            METRIC_DROPPED,
            "Sampled calls not shadowed because too many shadow calls were in flight",
            ["model"],
            **kwargs,
        )
        self.max_abs_diff = Gauge(
            METRIC_MAX_ABS_DIFF,
            "Largest absolute difference between the shadow's and the primary's output so far",
            ["model", "output"],
            **kwargs,
        )

    @classmethod
    def get(cls, registry: Any) -> _Metrics | None:
        try:
            import prometheus_client
        except ImportError:
            return None
        key = id(registry if registry is not None else prometheus_client.REGISTRY)
        with cls._lock:
            if key not in cls._made:
                cls._made[key] = cls(registry)
            return cls._made[key]


class ShadowRecorder:
    """Sampling, in-flight accounting, comparison, stats, log lines and counters: everything of
    the shadow but the call itself (the sync and async clients make that)."""

    def __init__(self, config: ShadowConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stats: dict[str, ModelShadowStats] = {}
        self._in_flight = 0
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._metrics = _Metrics.get(config.registry) if config.metrics else None
        #: Set when the client closes: copies still running then are not counted.
        self.closed = False

    def _model(self, model: str) -> ModelShadowStats:
        stats = self._stats.get(model)
        if stats is None:
            stats = self._stats[model] = ModelShadowStats()
        return stats

    def sampled(self) -> bool:
        sample = self.config.sample
        return sample >= 1 or (sample > 0 and self._rng.random() < sample)

    def reserve(self, model: str) -> bool:
        """A slot for one shadow call, or False (the sample is dropped and counted)."""
        with self._lock:
            if self._in_flight < self.config.max_in_flight:
                self._in_flight += 1
                return True
            self._model(model).dropped += 1
        if self._metrics is not None:
            self._metrics.dropped.labels(model=model).inc()
        return False

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def record(
        self, model: str, primary: OutputMap, shadow: OutputMap | None, error: str | None = None
    ) -> None:
        """One shadow copy done: its answer (or ``error``) against the primary's."""
        if self.closed:
            return
        worst: dict[str, float] = {}
        problems: list[str] = []
        if error is not None:
            outcome = "error"
            problems = [f"the shadow failed: {error}"]
        else:
            assert shadow is not None
            diverged, worst, problems = compare_outputs(
                primary, shadow, self.config.tolerance_for(model)
            )
            outcome = "divergent" if diverged else "match"
        with self._lock:
            stats = self._model(model)
            stats.compared += 1
            stats.divergent += outcome == "divergent"
            stats.errors += outcome == "error"
            for name, value in worst.items():
                stats.worst[name] = max(stats.worst.get(name, 0.0), value)
            if problems:
                stats.last_problem = "; ".join(problems)
            worst_now = {name: stats.worst[name] for name in worst}
        if self._metrics is not None:
            self._metrics.comparisons.labels(model=model, outcome=outcome).inc()
            for name, value in worst_now.items():
                self._metrics.max_abs_diff.labels(model=model, output=name).set(value)
        if problems:
            self._log(model, outcome, "; ".join(problems))

    def _log(self, model: str, outcome: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_log.get(model)
            if last is not None and now - last < self.config.log_interval_s:
                self._unlogged[model] = self._unlogged.get(model, 0) + 1
                return
            self._last_log[model] = now
            more = self._unlogged.pop(model, 0)
        if logger.isEnabledFor(logging.WARNING):
            logger.warning(
                "shadow %s: model '%s' at %s: %s%s",
                outcome,
                model,
                self.config.url,
                text,
                f" ({more} more since the last line)" if more else "",
            )

    def report(self) -> ShadowReport:
        with self._lock:
            models = {
                name: ModelShadowStats(
                    s.compared, s.divergent, s.errors, s.dropped, dict(s.worst), s.last_problem
                )
                for name, s in self._stats.items()
            }
        return ShadowReport(self.config.url, models)

    @property
    def in_flight(self) -> int:
        return self._in_flight
