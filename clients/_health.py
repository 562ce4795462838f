"""Server and model readiness, as one report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HealthReport", "combine_reports"]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What ``client.health(models=[...])`` found.

    ``error`` says why the server could not be asked (then ``live`` and ``ready`` are False).
    """

    url: str
    live: bool
    ready: bool
    models: Mapping[str, bool] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The server is live and ready and so is every model asked about."""
        return self.live and self.ready and all(self.models.values())

    def not_ready(self) -> list[str]:
        """The models asked about that are not ready."""
        return [name for name, ready in self.models.items() if not ready]

    def summary(self) -> str:
        if self.error:
            return f"server at {self.url} not reachable: {self.error}"
        parts = [
            f"server at {self.url} is {'live' if self.live else 'not live'} and "
            f"{'ready' if self.ready else 'not ready'}"
        ]
        waiting = self.not_ready()
        if waiting:
            parts.append("models not ready: " + ", ".join(waiting))
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "live": self.live,
            "ready": self.ready,
            "models": dict(self.models),
            "error": self.error,
        }


def combine_reports(url: str, reports: Sequence[HealthReport]) -> HealthReport:
    """One report for several endpoints (a client with ``weights``): live, ready and each
    model ready only where every endpoint is; the errors of all, named by endpoint."""
    names = list(reports[0].models) if reports else []
    errors = [f"{r.url}: {r.error}" for r in reports if r.error]
    return HealthReport(
        url,
        all(r.live for r in reports),
        all(r.ready for r in reports),
        {name: all(r.models.get(name, False) for r in reports) for name in names},
        "; ".join(errors) or None,
    )
