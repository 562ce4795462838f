"""A triton-deploy release as the driver sees it: its objects, its colors, what a change does.

    objects = ReleaseObjects.from_manifest(helm.manifest("triton"))
    objects.active_service, objects.preview_service, objects.deployment("green")
    changes = manifest_changes(current_docs, dry_run_docs)   # [Change(kind, name, action, ...)]

The chart's conventions the driver relies on (and nothing else): the two Services carry the
label ``triton-deploy/role: active|preview`` and select pods by ``color``; each color's
Deployment is ``<active Service name>-<color>`` and carries the label ``color``; the values
``activeColor``, ``<color>.enabled``, ``<color>.replicas``, ``<color>.imageTag``,
``<color>.version``, ``<color>.modelRepository`` and ``triton.grpc.maxConnectionAge(Grace)Ms``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import RolloutUsageError

__all__ = [
    "COLORS",
    "Change",
    "ColorValues",
    "DeploymentStatus",
    "ReleaseObjects",
    "color_values",
    "connection_age_s",
    "connection_drain_s",
    "deep_merge",
    "endpoint_propagation_s",
    "manifest_changes",
    "other_color",
]

COLORS = ("blue", "green")
ROLE_LABEL = "triton-deploy/role"


def other_color(color: str) -> str:
    return "green" if color == "blue" else "blue"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursively for mappings (how Helm coalesces values)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class ReleaseObjects:
    """Names of the objects the driver works with, read from the release's manifest."""

    active_service: str
    preview_service: str
    grpc_port: int
    metrics_port: int
    selector: dict[str, str]

    @classmethod
    def from_manifest(cls, docs: list[dict[str, Any]], release: str) -> ReleaseObjects:
        services = {
            (d.get("metadata", {}).get("labels") or {}).get(ROLE_LABEL): d
            for d in docs
            if d.get("kind") == "Service"
        }
        active, preview = services.get("active"), services.get("preview")
        if active is None or preview is None:
            raise RolloutUsageError(
                f"release {release!r} is not a triton-deploy release: its manifest has no "
                f"Services labelled {ROLE_LABEL}=active and =preview"
            )
        ports = {p.get("name"): int(p.get("port", 0)) for p in active["spec"].get("ports", [])}
        selector = {k: str(v) for k, v in active["spec"].get("selector", {}).items()}
        selector.pop("color", None)
        return cls(
            active_service=active["metadata"]["name"],
            preview_service=preview["metadata"]["name"],
            grpc_port=ports.get("grpc", 8001),
            metrics_port=ports.get("metrics", 8002),
            selector=selector,
        )

    def deployment(self, color: str) -> str:
        return f"{self.active_service}-{color}"

    def pod_selector(self, color: str) -> dict[str, str]:
        return {**self.selector, "color": color}

    @property
    def lock_name(self) -> str:
        return f"{self.active_service}-rollout"

    def preview_url(self, namespace: str) -> str:
        """The preview Service's in-cluster gRPC address."""
        return f"{self.preview_service}.{namespace}.svc:{self.grpc_port}"


@dataclass(frozen=True)
class DeploymentStatus:
    """A color's Deployment as the cluster reports it."""

    name: str
    exists: bool
    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    current: int = 0
    up_to_date: bool = False  # the controller has seen the latest spec
    image: str = ""
    progress_deadline_exceeded: bool = False

    @classmethod
    def from_object(cls, name: str, obj: dict[str, Any] | None) -> DeploymentStatus:
        if obj is None:
            return cls(name=name, exists=False)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        generation = int(obj.get("metadata", {}).get("generation") or 0)
        observed = int(status.get("observedGeneration") or 0)
        containers = (spec.get("template") or {}).get("spec", {}).get("containers") or [{}]
        conditions = status.get("conditions") or []
        deadline = any(
            c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
            for c in conditions
        )
        return cls(
            name=name,
            exists=True,
            desired=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
            ready=int(status.get("readyReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            current=int(status.get("replicas") or 0),
            up_to_date=observed >= generation,
            image=str(containers[0].get("image", "")),
            progress_deadline_exceeded=deadline,
        )

    @property
    def fully_available(self) -> bool:
        """Like ``kubectl rollout status``: the latest spec rolled out, every replica
        updated and available, no old replica left."""
        return (
            self.exists
            and self.up_to_date
            and self.updated >= self.desired
            and self.current <= self.updated
            and self.available >= self.desired
        )

    def progress(self) -> str:
        return f"{self.available}/{self.desired} available, {self.updated} updated"


@dataclass(frozen=True)
class ColorValues:
    """One color's values (computed: chart defaults + user-supplied)."""

    color: str
    enabled: bool
    replicas: int
    image_tag: str
    version: str
    repository: dict[str, Any] = field(default_factory=dict)

    def repository_text(self) -> str:
        source = self.repository.get("source", "objectStorage")
        if source == "pvc":
            pvc = self.repository.get("pvc") or {}
            sub = f"/{pvc['subPath']}" if pvc.get("subPath") else ""
            return f"pvc://{pvc.get('claimName', '')}{sub}"
        uri = str(self.repository.get("uri", ""))
        return uri if source == "objectStorage" else f"{uri} ({source})"


def color_values(values: Mapping[str, Any], color: str) -> ColorValues:
    block = values.get(color) or {}
    image = values.get("image") or {}
    return ColorValues(
        color=color,
        enabled=bool(block.get("enabled", False)),
        replicas=int(block.get("replicas", 0) or 0),
        image_tag=str(block.get("imageTag") or image.get("tag") or ""),
        version=str(block.get("version") or ""),
        repository=dict(block.get("modelRepository") or {}),
    )


DRAIN_ANNOTATION = "triton-deploy/connection-drain-seconds"


def connection_drain_s(
    values: Mapping[str, Any], color: str, deployment: Mapping[str, Any] | None = None
) -> float:
    """How long a color's clients take to leave it after a switch: the chart's
    ``triton-deploy/connection-drain-seconds`` on the color's Deployment, else computed the
    same way (max connection age x 1.1 for gRPC's jitter, + grace, rounded up); 0 when the
    color runs without a max connection age (its clients never move by themselves)."""
    annotations = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    if annotations.get(DRAIN_ANNOTATION) not in (None, ""):
        return float(annotations[DRAIN_ANNOTATION])
    age, grace = connection_age_s(values, color)
    return float(math.ceil(age * 1.1 + grace)) if age > 0 else 0.0


def endpoint_propagation_s(values: Mapping[str, Any]) -> float:
    """``shutdown.endpointPropagationSeconds``: how long a Service change takes to reach every
    node (default 10 s when the chart has no such value)."""
    value = (values.get("shutdown") or {}).get("endpointPropagationSeconds")
    return float(value) if value is not None else 10.0


def connection_age_s(values: Mapping[str, Any], color: str) -> tuple[float, float]:
    """The color's ``--grpc-max-connection-age`` and grace in seconds (the shared
    ``triton.grpc`` with the color's own ``<color>.triton.grpc`` over it)."""
    shared = (values.get("triton") or {}).get("grpc") or {}
    own = ((values.get(color) or {}).get("triton") or {}).get("grpc") or {}
    grpc = deep_merge(shared, own)
    return (
        float(grpc.get("maxConnectionAgeMs") or 0) / 1000.0,
        float(grpc.get("maxConnectionAgeGraceMs") or 0) / 1000.0,
    )


@dataclass(frozen=True)
class Change:
    """One object a helm upgrade would create, change or delete."""

    kind: str
    name: str
    action: str  # "create" | "change" | "delete"
    color: str | None
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        what = f"{self.action} {self.kind}/{self.name}"
        if self.fields:
            shown = ", ".join(self.fields[:6]) + (" ..." if len(self.fields) > 6 else "")
            what += f" ({shown})"
        return what


def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
    return str(doc.get("kind", "")), str(doc.get("metadata", {}).get("name", ""))


def _color(doc: Mapping[str, Any]) -> str | None:
    labels = doc.get("metadata", {}).get("labels") or {}
    color = labels.get("color")
    return str(color) if color else None


def _diff_paths(a: Any, b: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                yield path
            else:
                yield from _diff_paths(a[key], b[key], path)
    elif a != b:
        yield prefix or "(whole object)"


def manifest_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Change]:
    """What applying ``new`` over ``old`` changes, object by object."""
    before = {_key(d): d for d in old}
    after = {_key(d): d for d in new}
    changes: list[Change] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None and b is not None:
            changes.append(Change(key[0], key[1], "create", _color(b)))
        elif b is None and a is not None:
            changes.append(Change(key[0], key[1], "delete", _color(a)))
        elif a is not None and b is not None and a != b:
            paths = tuple(_diff_paths(a, b))
            changes.append(Change(key[0], key[1], "change", _color(b) or _color(a), paths))
    return changes
