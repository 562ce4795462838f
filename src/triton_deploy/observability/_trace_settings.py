"""Triton's trace settings (``--trace-config``), validated before the server sees them.

Triton 2.51 accepts an unknown setting such as ``triton,fiel=/x`` without a word, and in
``triton`` mode without a file, or with a folder that does not exist, it traces nothing and says
nothing. ``TraceSettings`` turns each of those into an error that names the setting.

    settings = TraceSettings.parse(["file=/var/log/trace/infer.json", "rate=1", "level=TENSORS"])
    server = TritonServer(repository, extra_args=settings.args())
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from triton_deploy.errors import ObservabilityError

__all__ = ["DEFAULT_LOG_FREQUENCY", "TraceSettings"]

#: Traces per file (``triton,log-frequency``). Triton's own default, 0, writes the file only at
#: exit, and in 2.51 not at all once a request was rejected before scheduling (wrong shape or
#: dtype): that request's trace is never released, so the buffered traces never reach the disk.
#: With a frequency, every full group of traces is written while the server runs.
DEFAULT_LOG_FREQUENCY = 100

Mode = Literal["triton", "opentelemetry"]
Level = Literal["TIMESTAMPS", "TENSORS"]

# Which --trace-config prefix each setting takes ("" = global).
_SCOPE: dict[str, str] = {
    "mode": "",
    "level": "",
    "rate": "",
    "count": "",
    "file": "triton",
    "log-frequency": "triton",
    "url": "opentelemetry",
    "resource": "opentelemetry",
    "bsp_max_queue_size": "opentelemetry",
    "bsp_schedule_delay": "opentelemetry",
    "bsp_max_export_batch_size": "opentelemetry",
}


class TraceSettings(BaseModel):
    """One tritonserver's tracing: Triton's ``--trace-config`` settings, checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "triton"
    level: tuple[Level, ...] = ("TIMESTAMPS",)
    rate: int = Field(1000, ge=0, description="trace every N-th request")
    count: int = Field(-1, ge=-1, description="stop after N traces; -1 = no limit")
    file: Path | None = None
    log_frequency: int = Field(DEFAULT_LOG_FREQUENCY, ge=0)
    url: str | None = None
    resource: tuple[str, ...] = ()
    bsp_max_queue_size: int | None = Field(None, ge=1)
    bsp_schedule_delay: int | None = Field(None, ge=0)
    bsp_max_export_batch_size: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.level:
            raise ValueError("level: give TIMESTAMPS, TENSORS or both")
        if self.mode == "triton":
            if self.file is None:
                raise ValueError(
                    "mode triton writes JSON files: give file=PATH (Triton traces nothing without it)"
                )
            if not self.file.is_absolute():
                raise ValueError(f"file={self.file}: give an absolute path")
            if self.rate == 0:
                raise ValueError(
                    "rate=0 traces nothing in mode triton: use 1 to trace every request"
                )
            otel = [
                k for k in ("url", "bsp_max_queue_size", "bsp_schedule_delay") if getattr(self, k)
            ]
            if otel or self.resource or self.bsp_max_export_batch_size:
                raise ValueError(
                    f"{', '.join(otel + (['resource'] if self.resource else []))}: "
                    "OpenTelemetry settings need mode=opentelemetry"
                )
        else:
            if "TENSORS" in self.level:
                raise ValueError(
                    "level=TENSORS is not supported by mode opentelemetry (Triton 2.51): "
                    "use mode triton for inputs and outputs"
                )
            if not self.url:
                raise ValueError(
                    "mode opentelemetry needs url=http://COLLECTOR:4318/v1/traces (OTLP/HTTP)"
                )
            if self.file is not None:
                raise ValueError("file: only mode triton writes trace files")
        for item in self.resource:
            if "=" not in item:
                raise ValueError(f"resource={item}: expected KEY=VALUE, e.g. service.name=triton")
        return self

    # -- from and to command lines -------------------------------------------------------------
    @classmethod
    def parse(cls, items: Iterable[str]) -> TraceSettings:
        """Settings as written after ``--trace-config`` (``rate=1``, ``triton,file=/x``, ...).

        ``level`` and ``resource`` may repeat; the mode prefix is optional (each setting belongs
        to one mode). A typo or a bad value raises ``ObservabilityError`` naming the setting.
        """
        values: dict[str, object] = {}
        levels: list[str] = []
        resources: list[str] = []
        for item in items:
            head, sep, value = item.partition("=")
            prefix, _, key = head.rpartition(",")
            prefix, key = prefix.strip(), key.strip()
            if not sep or not key:
                raise ObservabilityError(f"trace setting {item!r}: expected SETTING=VALUE")
            if key not in _SCOPE:
                raise ObservabilityError(
                    f"trace setting {item!r}: unknown setting {key!r} "
                    f"(known: {', '.join(sorted(_SCOPE))})"
                )
            if prefix and prefix != _SCOPE[key]:
                where = f"'{_SCOPE[key]},'" if _SCOPE[key] else "no prefix (global)"
                raise ObservabilityError(f"trace setting {item!r}: {key} takes {where}")
            if key == "level":
                if value.upper() == "OFF":
                    raise ObservabilityError(
                        "trace setting level=OFF: leave tracing out instead of turning it off"
                    )
                levels.append(value.upper())
            elif key == "resource":
                resources.append(value)
            else:
                values[key.replace("-", "_")] = value
        if levels:
            values["level"] = tuple(dict.fromkeys(levels))
        if resources:
            values["resource"] = tuple(resources)
        if "file" in values:  # a relative path on a command line means from here
            values["file"] = Path(str(values["file"])).expanduser().absolute()
        if "mode" not in values and ("url" in values or resources):
            values["mode"] = "opentelemetry"
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ObservabilityError(_describe(exc)) from None

    def args(self) -> list[str]:
        """The tritonserver flags: one ``--trace-config=...`` per setting."""
        flags = [f"mode={self.mode}"]
        flags += [f"level={level}" for level in self.level]
        flags += [f"rate={self.rate}", f"count={self.count}"]
        if self.mode == "triton":
            flags += [f"triton,file={self.file}", f"triton,log-frequency={self.log_frequency}"]
        else:
            flags.append(f"opentelemetry,url={self.url}")
            flags += [f"opentelemetry,resource={item}" for item in self.resource]
            for key in ("bsp_max_queue_size", "bsp_schedule_delay", "bsp_max_export_batch_size"):
                value = getattr(self, key)
                if value is not None:
                    flags.append(f"opentelemetry,{key}={value}")
        return [f"--trace-config={flag}" for flag in flags]

    def prepare(self) -> None:
        """Create the trace file's folder: Triton silently writes nothing into a missing one."""
        if self.file is not None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ObservabilityError(
                    f"trace file={self.file}: cannot create its folder: {exc}"
                ) from None

    def describe(self) -> str:
        where = (
            f"{self.file}.N ({self.log_frequency} traces per file)"
            if self.mode == "triton" and self.log_frequency
            else str(self.file)
            if self.mode == "triton"
            else str(self.url)
        )
        return (
            f"{self.mode}, level {'+'.join(self.level)}, every {self.rate} request(s)"
            f"{'' if self.count < 0 else f', {self.count} traces'} -> {where}"
        )


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)).replace("_", "-")
        parts.append(
            f"{where}: {error['msg']}" if where else error["msg"].removeprefix("Value error, ")
        )
    return "invalid trace settings: " + "; ".join(parts)
