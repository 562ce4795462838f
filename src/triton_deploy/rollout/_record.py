"""What a rollout did and where it stands, kept in the cluster so that any machine can resume,
promote or report it: a ConfigMap ``<fullname>-rollout`` beside the release.

    store = RecordStore(cluster, "triton-triton-deploy-rollout", release="triton")
    record = store.current()           # the last rollout (any outcome), or None
    store.save(record)                 # after every step
    store.history()                    # summaries of the last rollouts, newest first

The record is written before each step changes anything, so an interrupted rollout knows the
step to resume from.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._kube import Cluster
from ._traffic import TrafficState

__all__ = [
    "CheckResult",
    "CheckStatus",
    "Phase",
    "RecordStore",
    "Result",
    "RolloutRecord",
    "Settings",
    "Target",
    "now",
]

HISTORY_LENGTH = 20


def now() -> datetime:
    return datetime.now(UTC)


class Phase(StrEnum):
    """The step a rollout is at (or ended in)."""

    DEPLOYING = "deploying"  # helm upgrade: the idle color with the new version, full size
    WAITING = "waiting"  # until the idle Deployment is fully available
    ANALYZING = "analyzing"  # pre-promotion analysis through the preview Service
    AWAITING_PROMOTION = "awaiting-promotion"  # --manual: until `tdeploy promote`
    PROMOTING = "promoting"  # helm upgrade: activeColor flipped
    POST_ANALYSIS = "post-analysis"  # the new color's own metrics, for the analysis window
    SCALING_DOWN = "scaling-down"  # after the scale-down delay: the old color scaled down
    ABORTING = "aborting"  # a check failed before promotion: the idle color scaled down
    SWITCHING_BACK = "switching-back"  # a check failed after promotion: activeColor back
    DONE = "done"
    # --strategy canary / shadow (a release with the chart's GRPCRoute, gateway.enabled):
    SHADOWING = "shadowing"  # the route mirrors requests to the new color; its metrics judged
    CANARY = "canary"  # the route's weights step up; each step judged on the new color's metrics


class Result(StrEnum):
    RUNNING = "running"  # in progress, or interrupted (then no one holds the lock)
    AWAITING_PROMOTION = "awaiting-promotion"
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"  # before promotion; the live color never stopped serving
    SWITCHED_BACK = "switched-back"  # after promotion; traffic is back on the old color


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckResult(BaseModel):
    """One analysis check: what was measured, against which limit, and the verdict."""

    model_config = ConfigDict(extra="forbid")

    name: str
    status: CheckStatus
    summary: str
    numbers: dict[str, float | int | str | None] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is CheckStatus.FAILED

    def line(self) -> str:
        return f"{self.name}: {self.status.value}: {self.summary}"


class Target(BaseModel):
    """What the rollout puts on the idle color."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_repository: str
    image_tag: str | None = None
    version: str | None = None

    def describe(self) -> str:
        parts = [self.model_repository]
        if self.image_tag:
            parts.append(f"image tag {self.image_tag}")
        if self.version:
            parts.append(f"version {self.version}")
        return ", ".join(parts)


class Settings(BaseModel):
    """The rollout's timings and thresholds, kept so that `tdeploy promote` (maybe on another
    machine) runs the rest of the rollout as it was asked for."""

    model_config = ConfigDict(extra="forbid")

    ready_timeout_s: float = Field(900.0, gt=0)
    analysis_window_s: float = Field(300.0, ge=0)
    analysis_interval_s: float = Field(10.0, gt=0)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    min_requests: int = Field(50, ge=1)
    max_p99_ms: float | None = Field(None, gt=0)
    scale_down_delay_s: float | None = Field(None, ge=0)
    abort_scale_down_delay_s: float = Field(30.0, ge=0)
    keep_old_replicas: int = Field(0, ge=0)
    preview_url: str | None = None
    # --strategy canary / shadow: traffic moves through the release's GRPCRoute.
    strategy: Literal["bluegreen", "canary", "shadow"] = "bluegreen"
    canary_steps: list[int] = Field(default_factory=list)
    step_duration_s: float = Field(120.0, gt=0)
    shadow_duration_s: float = Field(600.0, gt=0)
    shadow_percent: int | None = Field(None, ge=1, le=100)
    #: Prometheus endpoints of clients that shadow calls (triton_deploy.clients ShadowConfig).
    shadow_metrics: list[str] = Field(default_factory=list)
    max_divergence_ratio: float = Field(0.0, ge=0, le=1)
    #: How long a Gateway may take to accept a route change (0: do not wait for its status).
    route_timeout_s: float = Field(120.0, ge=0)


class RolloutRecord(BaseModel):
    """One rollout (or rollback) of a release."""

    model_config = ConfigDict(extra="ignore")

    id: str
    kind: Literal["rollout", "rollback"] = "rollout"
    release: str
    namespace: str
    chart: str
    from_color: str
    to_color: str
    target: Target | None = None
    mode: Literal["auto", "manual"] = "auto"
    settings: Settings = Field(default_factory=Settings)
    phase: Phase = Phase.DEPLOYING
    result: Result = Result.RUNNING
    message: str = ""
    started_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    promoted_at: datetime | None = None
    failed_at: datetime | None = None
    switched_back_at: datetime | None = None
    finished_at: datetime | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    #: Models and their versions served by ``to_color``, as the pre-promotion analysis saw them.
    models: dict[str, list[str]] = Field(default_factory=dict)
    #: Triton counters of each pod of the new color when it was promoted (post-analysis baseline).
    baseline: dict[str, dict[str, float]] = Field(default_factory=dict)
    #: The new color's configured replicas to restore after an HPA-sized rollout.
    restore_replicas: int | None = None
    old_replicas: int | None = None
    #: sha256 of the target repository's manifest.json, as verified before the rollout began.
    manifest_digest: str | None = None
    #: A canary or shadow phase: the route's weights and mirror, the steps so far.
    traffic: TrafficState | None = None

    @property
    def in_progress(self) -> bool:
        return self.result in (Result.RUNNING, Result.AWAITING_PROMOTION)

    def set_check(self, check: CheckResult) -> None:
        self.checks = [c for c in self.checks if c.name != check.name] + [check]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "from": self.from_color,
            "to": self.to_color,
            "target": self.target.describe() if self.target else None,
            "manifest_digest": self.manifest_digest,
            "result": self.result.value,
            "phase": self.phase.value,
            "message": self.message,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "strategy": self.settings.strategy,
            "weights": dict(self.traffic.weights) if self.traffic else None,
        }


class RecordStore:
    """The ConfigMap holding the current record and a short history."""

    def __init__(self, cluster: Cluster, name: str, *, release: str) -> None:
        self.cluster = cluster
        self.name = name
        self.release = release

    def _read(self) -> dict[str, str]:
        obj = self.cluster.get("v1", "configmaps", self.name)
        return dict(obj.get("data") or {}) if obj else {}

    def current(self) -> RolloutRecord | None:
        text = self._read().get("current")
        return RolloutRecord.model_validate_json(text) if text else None

    def history(self) -> list[dict[str, Any]]:
        text = self._read().get("history")
        data = json.loads(text) if text else []
        return data if isinstance(data, list) else []

    def save(self, record: RolloutRecord, *, finished: bool = False) -> None:
        record.updated_at = now()
        data = {"current": record.model_dump_json()}
        if finished:
            history = [h for h in self.history() if h.get("id") != record.id]
            data["history"] = json.dumps([record.summary(), *history][:HISTORY_LENGTH])
        if self.cluster.get("v1", "configmaps", self.name) is None:
            self.cluster.create(
                "v1",
                "configmaps",
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": self.name,
                        "namespace": self.cluster.namespace,
                        "labels": {
                            "app.kubernetes.io/managed-by": "tdeploy",
                            "app.kubernetes.io/instance": self.release,
                        },
                    },
                    "data": data,
                },
            )
        else:
            self.cluster.patch("v1", "configmaps", self.name, {"data": data})
