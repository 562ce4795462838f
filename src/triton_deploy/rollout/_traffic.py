"""The Gateway API side of a release: its GRPCRoute's weights and mirror, in values and live.

    weights = route_weights(route, objects)         # {"blue": 90, "green": 10}
    mirror = route_mirror(route, objects)           # ("green", None) or None
    accepted, why = route_accepted(route)           # every parent Gateway took this generation
    split_values({"blue": 90, "green": 10})         # {"trafficSplit": {"blue": 90, "green": 10}}

The chart's conventions (templates/gateway.yaml): with ``gateway.enabled`` the release has one
GRPCRoute named like the active Service, whose one rule has a backendRef per color to the
Service ``<active Service>-<color>``; ``trafficSplit.<color>`` sets the weights (both null: 100 for
``activeColor``), ``shadow.enabled`` adds a RequestMirror filter to the idle color.
``TrafficState`` is where a canary or a shadow phase stands, kept in the rollout record.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._errors import RolloutUsageError

__all__ = [
    "GRPCROUTE_API",
    "GRPCROUTE_PLURAL",
    "StepRecord",
    "TrafficState",
    "follow_active_values",
    "gateway_enabled",
    "merge_patch",
    "parse_steps",
    "reset_patch",
    "route_accepted",
    "route_from_manifest",
    "route_mirror",
    "route_weights",
    "split_values",
    "values_split",
]

GRPCROUTE_API = "gateway.networking.k8s.io/v1"
GRPCROUTE_PLURAL = "grpcroutes"
GRPCROUTE_KIND = "GRPCRoute"


class StepRecord(BaseModel):
    """One canary step as it went (kept in the record, shown by ``tdeploy status``)."""

    model_config = ConfigDict(extra="forbid")

    weight: int
    started_at: datetime
    finished_at: datetime | None = None
    requests: int = 0
    failures: int = 0
    p99_ms: float | None = None
    status: str = "running"  # running | passed | failed | skipped


class TrafficState(BaseModel):
    """Where a canary (``--strategy canary``) or a shadow phase (``--strategy shadow``) stands."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["canary", "shadow"]
    #: The canary's weights of the new color, in percent, the last one 100.
    steps: list[int] = Field(default_factory=list)
    #: Index of the step in progress (== len(steps) when every step passed).
    step: int = 0
    step_started_at: datetime | None = None
    history: list[StepRecord] = Field(default_factory=list)
    #: What the route was last set to: percent of requests per color.
    weights: dict[str, int] = Field(default_factory=dict)
    #: The RequestMirror filter to the new color is on (the shadow phase).
    mirroring: bool = False
    shadow_started_at: datetime | None = None
    #: The release's own ``shadow`` values before the shadow phase (restored after it).
    shadow_before: dict[str, Any] | None = None
    #: The new color's Triton counters when the step or the shadow phase began.
    baseline: dict[str, dict[str, float]] = Field(default_factory=dict)
    #: The clients' shadow comparison counters when the shadow phase began.
    divergence_baseline: dict[str, float] = Field(default_factory=dict)


def parse_steps(text: str) -> list[int]:
    """``"5,25,50,100"`` -> ``[5, 25, 50, 100]``: whole percents, increasing, ending at 100."""
    parts = [part.strip().rstrip("%") for part in text.split(",") if part.strip()]
    try:
        steps = [int(part) for part in parts]
    except ValueError:
        raise RolloutUsageError(
            f"--steps: expected whole percents separated by commas, e.g. 5,25,50,100, got {text!r}"
        ) from None
    if not steps or any(not 0 < s <= 100 for s in steps):
        raise RolloutUsageError(f"--steps: each step is a percent from 1 to 100, got {text!r}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise RolloutUsageError(f"--steps must increase, got {text!r}")
    if steps[-1] != 100:
        raise RolloutUsageError(
            f"--steps must end at 100 (the new color takes every request before it is "
            f"promoted), got {text!r}: add ,100"
        )
    return steps


def gateway_enabled(values: Mapping[str, Any]) -> bool:
    return bool((values.get("gateway") or {}).get("enabled"))


def values_split(values: Mapping[str, Any]) -> dict[str, int]:
    """The weights the values give the route (what templates/gateway.yaml renders)."""
    split = values.get("trafficSplit") or {}
    if split.get("blue") is None and split.get("green") is None:
        active = str(values.get("activeColor", "blue"))
        return {"blue": 100 if active == "blue" else 0, "green": 100 if active == "green" else 0}
    return {"blue": int(split.get("blue") or 0), "green": int(split.get("green") or 0)}


def split_values(weights: Mapping[str, int]) -> dict[str, Any]:
    """Overrides that set the route's weights explicitly."""
    return {"trafficSplit": {"blue": int(weights["blue"]), "green": int(weights["green"])}}


def follow_active_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides that clear an explicit ``trafficSplit`` (the route then gives ``activeColor``
    100 %); nothing when none is set. Part of every color flip, so that a flip moves every
    request whatever a canary left in the values."""
    split = values.get("trafficSplit") or {}
    if split.get("blue") is None and split.get("green") is None:
        return {}
    return {"trafficSplit": {"blue": None, "green": None}}


def route_from_manifest(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The release's GRPCRoute as rendered, or None (gateway off)."""
    for doc in docs:
        if doc.get("kind") == GRPCROUTE_KIND and doc.get("apiVersion") == GRPCROUTE_API:
            return doc
    return None


def route_weights(route: Mapping[str, Any], services: Mapping[str, str]) -> dict[str, int]:
    """Percent of the route's requests per color (``services``: backend Service -> color).
    Weights are relative in the Gateway API: they are normalised to percents here."""
    raw: dict[str, int] = {}
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            color = services.get(str(ref.get("name", "")))
            if color is not None:
                raw[color] = raw.get(color, 0) + int(ref.get("weight", 1))
    total = sum(raw.values())
    if total <= 0:
        return dict.fromkeys(raw, 0)
    return {color: round(100 * weight / total) for color, weight in raw.items()}


def route_mirror(
    route: Mapping[str, Any], services: Mapping[str, str]
) -> tuple[str, int | None] | None:
    """(color, percent or None for every request) of the route's RequestMirror, or None."""
    for rule in (route.get("spec") or {}).get("rules") or []:
        for item in rule.get("filters") or []:
            if item.get("type") != "RequestMirror":
                continue
            mirror = item.get("requestMirror") or {}
            color = services.get(str((mirror.get("backendRef") or {}).get("name", "")))
            if color is not None:
                percent = mirror.get("percent")
                return color, int(percent) if percent is not None else None
    return None


def route_accepted(route: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether every Gateway the route names accepted its current generation (the route's
    ``status.parents[].conditions``: Accepted and ResolvedRefs true, observedGeneration at
    least ``metadata.generation``), and why not."""
    generation = int((route.get("metadata") or {}).get("generation") or 0)
    wanted = [str(p.get("name")) for p in (route.get("spec") or {}).get("parentRefs") or []]
    parents = (route.get("status") or {}).get("parents") or []
    seen: dict[str, str] = {}
    for parent in parents:
        name = str((parent.get("parentRef") or {}).get("name"))
        conditions = {c.get("type"): c for c in parent.get("conditions") or []}
        problems = []
        for kind in ("Accepted", "ResolvedRefs"):
            condition = conditions.get(kind)
            if condition is None:
                problems.append(f"no {kind} condition")
            elif condition.get("status") != "True":
                problems.append(
                    f"{kind} {condition.get('status')} ({condition.get('reason', '')}: "
                    f"{condition.get('message', '')})"
                )
            elif int(condition.get("observedGeneration") or 0) < generation:
                problems.append(
                    f"{kind} is for generation {condition.get('observedGeneration')}, "
                    f"not {generation} yet"
                )
        seen[name] = "; ".join(problems)
    missing = [name for name in wanted if name not in seen]
    if missing:
        return False, f"no status from Gateway {', '.join(missing)} yet"
    bad = {name: why for name, why in seen.items() if why and name in wanted}
    if bad:
        return False, "; ".join(f"Gateway {name}: {why}" for name, why in bad.items())
    return True, f"accepted by {', '.join(wanted)} (generation {generation})"


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 JSON merge patch that turns ``old`` into ``new``."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch


def reset_patch(
    route: Mapping[str, Any], services: Mapping[str, str], *, live: str
) -> dict[str, Any] | None:
    """A merge patch that gives ``live`` 100 % of the route and every other color 0 %, with no
    RequestMirror filter (what the chart renders with trafficSplit unset and shadow off); None
    when the route already is so."""
    rules = copy.deepcopy(list((route.get("spec") or {}).get("rules") or []))
    for rule in rules:
        for ref in rule.get("backendRefs") or []:
            color = services.get(str(ref.get("name", "")))
            if color is not None:
                ref["weight"] = 100 if color == live else 0
        filters = [f for f in rule.get("filters") or [] if f.get("type") != "RequestMirror"]
        if filters:
            rule["filters"] = filters
        else:
            rule.pop("filters", None)
    if rules == list((route.get("spec") or {}).get("rules") or []):
        return None
    return {"spec": {"rules": rules}}
