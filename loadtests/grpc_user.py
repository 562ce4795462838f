"""``TritonGrpcUser``: an abstract locust User that calls Triton through the project's client.

    class MyUser(TritonGrpcUser):
        @task
        def classify(self) -> None:
            self.call("my_model", self.client.infer, "my_model", x=batch)

(The load test's own user, ``users.WorkloadUser``, runs the task mix's workloads.)

Each user owns an ``InferenceClient`` (one gRPC channel, recycled every 60 s as in production)
for ``self.host`` (``--host host:port``), with the TLS, metadata and deadline options of
``plugin``. ``call`` times one call and reports it with ``events.request``: request_type
``"grpc"``, name = the model, the response time in ms, the response length (bytes of the
decoded output tensors) and, for a failed call, the ``ClientError``. Other exceptions are bugs
in the load test: they propagate and locust counts them as exceptions.

gRPC's C core must yield to gevent: ``init_gevent()`` runs on import, before any channel.
Import ``locust`` before this module (locustfiles do: ``import locust`` first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import grpc.experimental.gevent as grpc_gevent
import numpy as np
from locust import User
from locust.env import Environment

grpc_gevent.init_gevent()

from triton_deploy.clients import (  # noqa: E402 (after gevent)
    DEFAULT_TIMEOUT_S,
    ClientError,
    InferenceClient,
)

from .config import LoadTestConfigError, parse_headers  # noqa: E402

__all__ = ["TritonGrpcUser", "client_options", "response_bytes"]

T = TypeVar("T")


def client_options(options: Any) -> dict[str, Any]:
    """``InferenceClient`` keyword arguments from locust's parsed options (``plugin``'s)."""
    if options is None:  # locust used as a library, without our options
        return {}
    headers = parse_headers(getattr(options, "grpc_header", ""))
    token = getattr(options, "grpc_token", "")
    if token:
        headers["authorization"] = f"Bearer {token}"
    return {
        "timeout": float(getattr(options, "grpc_timeout", DEFAULT_TIMEOUT_S)),
        "headers": headers,
        "ssl": bool(getattr(options, "grpc_tls", False)),
        "root_certificates": getattr(options, "grpc_ca", "") or None,
        "certificate_chain": getattr(options, "grpc_cert", "") or None,
        "private_key": getattr(options, "grpc_key", "") or None,
    }


def response_bytes(result: Any) -> int:
    """Bytes of the decoded outputs: an output map, one array, or a list of either."""
    if isinstance(result, np.ndarray):
        return int(result.nbytes)
    if isinstance(result, Mapping):
        return sum(response_bytes(value) for value in result.values())
    if isinstance(result, list | tuple):
        return sum(response_bytes(value) for value in result)
    return 0


class TritonGrpcUser(User):
    """Calls models on Triton's gRPC endpoint ``host`` (see the module docstring)."""

    abstract = True
    #: Extra ``InferenceClient`` options for every user of this class.
    client_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if not self.host:
            raise LoadTestConfigError("no gRPC endpoint: give --host host:port")
        options = {**client_options(environment.parsed_options), **self.client_kwargs}
        self.client = InferenceClient(self.host, **options)

    def on_stop(self) -> None:
        self.client.close()

    def call(self, name: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run ``function(*args, **kwargs)`` and report it as one gRPC request named ``name``;
        returns its result, or ``None`` when the call failed (it is reported as a failure)."""
        result: T | None = None
        error: ClientError | None = None
        length = 0
        start = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        except ClientError as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        if error is None:
            length = response_bytes(result)
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=elapsed_ms,
            response_length=length,
            response=result,
            context={},
            exception=error,
        )
        return result
