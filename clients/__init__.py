"""Call models served by Triton Inference Server over gRPC: typed, validated, retried, and
blue/green aware.

    from triton_deploy.clients import CtrClient, DigitsClient, InferenceClient

    with InferenceClient("localhost:8001", timeout=2.0) as client:
        client.wait_until_ready(models=["digits", "ctr"])
        out = client.infer("digits", IMAGES=images)            # {"LABELS": ..., "PROBS": ...}
        predictions = DigitsClient(client).classify(images)
        click_probs = CtrClient(client).predict(impressions)

``AsyncInferenceClient`` (with ``AsyncDigitsClient`` and ``AsyncCtrClient``) is the asyncio
twin with the same methods. Importing this package loads tritonclient[grpc] and numpy only,
never a training framework.

Errors (all ``ClientError``, itself a ``triton_deploy.errors.TritonDeployError``):

    ClientError
    ├── UsageError              the client was used wrongly (options, closed client)
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
    TransientError,
    Unauthenticated,
    Unavailable,
    Unsupported,
    UsageError,
)
from ._health import HealthReport
from ._models import AsyncCtrClient, AsyncDigitsClient, CtrClient, DigitsClient, Prediction
from ._retry import RetryPolicy
from ._schema import ModelSchema, TensorSpec
from ._validation import arrays_from_records

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_CONNECTION_AGE_S",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_URL",
    "AsyncCtrClient",
    "AsyncDigitsClient",
    "AsyncInferenceClient",
    "Cancelled",
    "ClientError",
    "CtrClient",
    "DeadlineExceeded",
    "DigitsClient",
    "HealthReport",
    "InferenceClient",
    "InvalidInput",
    "ModelNotFound",
    "ModelSchema",
    "ModelUnavailable",
    "NotReady",
    "PermissionDenied",
    "Prediction",
    "RequestError",
    "RetryPolicy",
    "ServerError",
    "ServerOverloaded",
    "TensorSpec",
    "TransientError",
    "Unauthenticated",
    "Unavailable",
    "Unsupported",
    "UsageError",
    "arrays_from_records",
]

# Public names report this package as their home (httpx does the same).
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and getattr(_obj, "__module__", "").startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj
