"""W3C trace context for each call, from the caller's OpenTelemetry span.

When the OpenTelemetry API is installed (``pip install 'triton-deploy[otel]'``) and the caller
has an active, valid span, every call carries ``traceparent`` (and ``tracestate`` when set) as
gRPC metadata. Triton started with ``--trace-config mode=opentelemetry`` reads them and makes
its own spans children of the caller's, so a service's trace and Triton's join.

Without the package nothing is imported and nothing is sent; the check costs one dictionary
lookup per call after the first.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["trace_context"]

_otel: Any = None  # (trace module, propagator) once imported; False when not installed


def _load() -> Any:
    global _otel
    if _otel is None:
        if importlib.util.find_spec("opentelemetry") is None:
            _otel = False
        else:
            try:
                from opentelemetry import trace
                from opentelemetry.trace.propagation.tracecontext import (
                    TraceContextTextMapPropagator,
                )
            except ImportError:  # the opentelemetry namespace without the API
                _otel = False
            else:
                _otel = (trace, TraceContextTextMapPropagator())
    return _otel


def trace_context() -> dict[str, str]:
    """``{"traceparent": ..., "tracestate": ...}`` for the current span; empty without one."""
    otel = _load()
    if not otel:
        return {}
    trace, propagator = otel
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagator.inject(carrier)
    return carrier
