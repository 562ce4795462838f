"""Call models served by Triton Inference Server over gRPC: typed, validated, retried, and
blue/green aware.

    from triton_deploy.clients import InferenceClient

    with InferenceClient("localhost:8001", timeout=2.0) as client:
        client.wait_until_ready(models=["digits", "ctr"])
        out = client.infer("digits", IMAGES=images)            # {"LABELS": ..., "PROBS": ...}
        big = client.infer_many("digits", IMAGES=many)         # any batch size, chunked

    # a canary by weight without a gateway, and a shadow that compares answers:
    InferenceClient(weights={"triton-blue:8001": 95, "triton-green:8001": 5})
    InferenceClient("triton:8001", shadow=ShadowConfig("triton-preview:8001", sample=0.01))

``AsyncInferenceClient`` is the asyncio twin with the same methods. The client knows no model
by name: typed clients for the example models live with the examples
(``triton_deploy.build.examples.digits.client.DigitsClient``, ``...ctr.client.CtrClient``).
Importing this package loads tritonclient[grpc] and numpy only, never a training framework.

Errors (all ``ClientError``, itself a ``triton_deploy.errors.TritonDeployError``):

    ClientError
    ├── UsageError              the client was used wrongly (options, arguments, TLS files)
    ├── TlsError                the TLS handshake failed (wrong CA, plain port): not retried
    ├── RequestError            do not retry: fix the request
    │   ├── InvalidInput        client-side checks, INVALID_ARGUMENT, OUT_OF_RANGE
    │   ├── ModelNotFound       NOT_FOUND
    │   ├── PermissionDenied    PERMISSION_DENIED, restricted protocol
    │   ├── Unauthenticated     UNAUTHENTICATED
    │   └── Unsupported         UNIMPLEMENTED
    ├── TransientError          retried automatically within the deadline
    │   ├── Unavailable         UNAVAILABLE
    │   │   └── ModelUnavailable  NOT_FOUND "no available versions" (loading, unloading)
    │   └── ServerOverloaded    RESOURCE_EXHAUSTED, queue full / queue timeout
    ├── DeadlineExceeded        DEADLINE_EXCEEDED
    ├── Cancelled               CANCELLED
    ├── NotReady                wait_until_ready() timed out
    └── ServerError             INTERNAL, UNKNOWN, DATA_LOSS, ABORTED
"""

import logging as _logging

from ._async_client import AsyncInferenceClient
from ._base import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_CONNECTION_AGE_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
)
from ._client import InferenceClient
from ._errors import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    ModelUnavailable,
    NotReady,
    PermissionDenied,
    RequestError,
    ServerError,
    ServerOverloaded,
    TlsError,
    TransientError,
    Unauthenticated,
    Unavailable,
    Unsupported,
    UsageError,
)
from ._health import HealthReport
from ._retry import RetryBudget, RetryPolicy
from ._schema import ModelSchema, TensorSpec
from ._shadow import ModelShadowStats, ShadowConfig, ShadowReport, Tolerance
from ._validation import arrays_from_records

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTION_AGE_S",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_URL",
    "AsyncInferenceClient",
    "Cancelled",
    "ClientError",
    "DeadlineExceeded",
    "HealthReport",
    "InferenceClient",
    "InvalidInput",
    "ModelNotFound",
    "ModelSchema",
    "ModelShadowStats",
    "ModelUnavailable",
    "NotReady",
    "PermissionDenied",
    "RequestError",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "ServerOverloaded",
    "ShadowConfig",
    "ShadowReport",
    "TensorSpec",
    "TlsError",
    "Tolerance",
    "TransientError",
    "Unauthenticated",
    "Unavailable",
    "Unsupported",
    "UsageError",
    "arrays_from_records",
]

# A library logs, the application decides where to: nothing is printed unless it configures
# logging (calls at DEBUG, retries and failures at WARNING on "triton_deploy.clients").
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

# The example models' clients used to live here; they moved to the examples' folders.
_MOVED = {
    "DigitsClient": "triton_deploy.build.examples.digits.client",
    "AsyncDigitsClient": "triton_deploy.build.examples.digits.client",
    "Prediction": "triton_deploy.build.examples.digits.client",
    "CtrClient": "triton_deploy.build.examples.ctr.client",
    "AsyncCtrClient": "triton_deploy.build.examples.ctr.client",
}


def __getattr__(name: str) -> object:
    """Deprecated re-exports of the example clients (``from triton_deploy.clients import
    CtrClient`` keeps working, with a ``DeprecationWarning``)."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(
        f"triton_deploy.clients.{name} moved to {home}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)


# Public names report this package as their home (httpx does the same).
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and getattr(_obj, "__module__", "").startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj
