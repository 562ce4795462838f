"""The client's error tree and the translation of every gRPC / tritonclient error into it.

    TritonDeployError                     (triton_deploy.errors: the project's root)
    └── ClientError                       every error the client raises on purpose
        ├── UsageError                    the client was used wrongly: options, arguments, TLS
        │                                 files, a closed client (raised before any gRPC call)
        ├── TlsError                      the TLS handshake failed: wrong CA, a certificate that
        │                                 does not name the host, TLS to a plain port (not retried)
        ├── RequestError                  the request cannot succeed as sent: fix it, do not retry
        │   ├── InvalidInput              INVALID_ARGUMENT, OUT_OF_RANGE, message too large,
        │   │                             and the client's own checks before sending
        │   ├── ModelNotFound             NOT_FOUND (unknown model or version)
        │   ├── PermissionDenied          PERMISSION_DENIED, Triton's restricted protocols
        │   ├── Unauthenticated           UNAUTHENTICATED
        │   └── Unsupported               UNIMPLEMENTED
        ├── TransientError                retried automatically (backoff + jitter) within the deadline
        │   ├── Unavailable               UNAVAILABLE: server down, restarting, draining, reset
        │   │   └── ModelUnavailable      NOT_FOUND "has no available versions": the model is
        │   │                             loading or unloading (e.g. the server is stopping)
        │   └── ServerOverloaded          RESOURCE_EXHAUSTED, Triton queue full / queue timeout
        ├── DeadlineExceeded              DEADLINE_EXCEEDED, or the deadline ran out between retries
        ├── Cancelled                     CANCELLED
        ├── NotReady                      wait_until_ready() gave up: server or models not ready
        └── ServerError                   INTERNAL, UNKNOWN, DATA_LOSS, ABORTED, ...: see the server log

``ALREADY_EXISTS`` and ``FAILED_PRECONDITION`` map to ``RequestError`` itself. Triton reports a
full queue (``Exceeds maximum queue size``), a request that waited past the queue policy's
timeout (``Request timeout expired``) and a restricted protocol (``This protocol is
restricted``) with status UNAVAILABLE, and a model without a loaded version (``has no
available versions``: loading, unloading, server shutting down) with NOT_FOUND; gRPC reports a
failed TLS handshake as UNAVAILABLE too. The messages decide, see ``from_status``.
"""

from __future__ import annotations

from typing import Any

import grpc
from tritonclient.utils import InferenceServerException

from triton_deploy.errors import TritonDeployError

__all__ = [
    "Cancelled",
    "ClientError",
    "DeadlineExceeded",
    "InvalidInput",
    "ModelNotFound",
    "ModelUnavailable",
    "NotReady",
    "PermissionDenied",
    "RequestError",
    "ServerError",
    "ServerOverloaded",
    "TlsError",
    "TransientError",
    "Unauthenticated",
    "Unavailable",
    "Unsupported",
    "UsageError",
    "from_exception",
    "from_status",
]


class ClientError(TritonDeployError):
    """Root of the client's errors.

    ``status`` is the gRPC status name the server (or gRPC) reported, ``None`` for errors the
    client found itself; ``model`` is the model called, when there was one; ``server_message``
    is the server's own text.
    """

    #: What to do about it; appended to the message.
    hint: str = ""
    #: A retry was due but the client's ``RetryBudget`` had no token left.
    retry_budget_spent: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: str | None = None,
        model: str | None = None,
        server_message: str | None = None,
    ) -> None:
        self.status = status
        self.model = model
        self.server_message = server_message
        text = message
        if self.hint and not text.rstrip().endswith(self.hint):
            text = f"{text.rstrip().rstrip('.')}. {self.hint}"
        super().__init__(text)

    def note_retry_budget_spent(self) -> None:
        """Say in the message that a retry was due but the retry budget was spent."""
        self.retry_budget_spent = True
        self.args = (
            f"{self.args[0]} (Not retried: the client's retry budget is spent, too many "
            "retries lately; see RetryBudget.)",
        )


class UsageError(ClientError):
    """The client was used wrongly: an invalid option or argument, missing or mismatched TLS
    files, a closed client. Raised before anything is sent."""


class TlsError(ClientError):
    """The TLS handshake with the server failed; retrying cannot help."""

    hint = (
        "Check the TLS options: root_certificates (--ca) must hold the CA that signed the "
        "server's certificate, that certificate must name the host in the URL, and the port "
        "must serve TLS (a plain port answers WRONG_VERSION_NUMBER)."
    )


class RequestError(ClientError):
    """The request cannot succeed as sent; retrying it will not help."""

    hint = "Fix the request; retrying it unchanged will not help."


class InvalidInput(RequestError):
    """The inputs do not match the model: found by the client before sending, or by the server.

    ``tensor`` names the input at fault when known; ``rows`` is the ``(start, stop)`` range of
    the batch that the failed request carried, for ``infer_many``.
    """

    rows: tuple[int, int] | None = None

    hint = "Compare with client.model_schema(model) (tensor names, datatypes, shapes)."

    def __init__(
        self,
        message: str,
        *,
        tensor: str | None = None,
        status: str | None = None,
        model: str | None = None,
        server_message: str | None = None,
    ) -> None:
        self.tensor = tensor
        super().__init__(message, status=status, model=model, server_message=server_message)


class ModelNotFound(RequestError):
    """The server has no such model (or version) loaded."""

    hint = "Check the model name and version; `tdeploy health --models NAME` shows what is ready."


class PermissionDenied(RequestError):
    """The server refused the call: a required header or permission is missing."""

    hint = "Pass the header the server expects (headers={...} on the client or the call)."


class Unauthenticated(RequestError):
    """The server wants credentials it did not get."""

    hint = "Pass credentials: an auth header (headers=) or a TLS client certificate."


class Unsupported(RequestError):
    """The server does not implement this call."""

    hint = "Check that the server is a Triton Inference Server of a supported version."


class TransientError(ClientError):
    """May succeed if tried again; the client retries these itself while the deadline allows."""


class Unavailable(TransientError):
    """The server could not be reached: down, restarting, draining or the connection broke."""

    hint = (
        "Check the URL and that tritonserver is up (`tdeploy health`); "
        "the client retries this while the deadline and its retry budget allow."
    )


class ModelUnavailable(Unavailable):
    """The model is known but has no ready version: it is loading or unloading, or the server
    is shutting down (Triton answers NOT_FOUND "... has no available versions" then)."""

    hint = (
        "Wait for the model to load (`tdeploy health --models NAME`) or check the server log; "
        "the client retries this while the deadline and its retry budget allow."
    )


class ServerOverloaded(TransientError):
    """The model's queue is full, or the request waited longer than its queue policy allows."""

    hint = (
        "Slow down or retry later; scale out, or raise the model's max_queue_size / "
        "queue timeout. The client retries this while the deadline and its retry budget allow."
    )


class DeadlineExceeded(ClientError):
    """No answer within the call's deadline (``timeout``), retries included."""

    hint = "Raise timeout= (per call) or the client's default, send smaller batches, or scale out."


class Cancelled(ClientError):
    """The call was cancelled (by the client, or by a server that is shutting down)."""

    hint = "Retry if the cancellation was not intended."


class NotReady(ClientError):
    """``wait_until_ready`` timed out; ``report`` holds the last health report."""

    hint = "Check the server log for models that failed to load."

    def __init__(self, message: str, *, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class ServerError(ClientError):
    """The server failed to process a valid request."""

    hint = "See the tritonserver log for the cause."


# Every gRPC status code, mapped. A test checks that this covers grpc.StatusCode completely.
STATUS_ERRORS: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.OK: ServerError,  # an error that claims OK is a broken server or proxy
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNKNOWN: ServerError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: ModelNotFound,
    grpc.StatusCode.ALREADY_EXISTS: RequestError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ServerOverloaded,
    grpc.StatusCode.FAILED_PRECONDITION: RequestError,
    grpc.StatusCode.ABORTED: ServerError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInput,
    grpc.StatusCode.UNIMPLEMENTED: Unsupported,
    grpc.StatusCode.INTERNAL: ServerError,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: ServerError,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}

_BY_NAME: dict[str, grpc.StatusCode] = {code.name: code for code in grpc.StatusCode}

# Triton answers these with UNAVAILABLE although the server is up (core/src/scheduler_utils.cc,
# dynamic_batch_scheduler.cc, grpc_server.cc); so does `tdeploy serve`'s load shedder
# (triton_deploy.runtime.shedder) when its bounded queue is full.
_OVERLOAD_MESSAGES = ("exceeds maximum queue size", "request timeout expired", "server overloaded")
_RESTRICTED_MESSAGE = "this protocol is restricted"
# NOT_FOUND for a model that exists but has no loaded version: loading, unloading, or the
# server is shutting down (SIGTERM unloads every model while requests still arrive). Transient.
_NO_VERSIONS_MESSAGE = "has no available versions"
# gRPC reports a failed TLS handshake as UNAVAILABLE ("Tls handshake failed (TSI_...)",
# "Ssl handshake failed", "Peer name ... is not in peer certificate").
_TLS_MESSAGES = ("handshake failed", "peer name", "ssl_error_ssl", "certificate_verify_failed")
# A server that expects TLS closes a plain connection at once.
_PLAIN_TO_TLS_MESSAGE = "socket closed"
# gRPC's own limit on message size comes back as RESOURCE_EXHAUSTED; retrying cannot help.
_TOO_LARGE_MESSAGES = ("larger than max", "message too large")

_SUMMARY: dict[type[ClientError], str] = {
    ServerError: "the server failed",
    Cancelled: "the call was cancelled",
    InvalidInput: "the server rejected the inputs",
    DeadlineExceeded: "no answer before the deadline",
    ModelNotFound: "not found on the server",
    RequestError: "the server rejected the request",
    PermissionDenied: "permission denied",
    ServerOverloaded: "the server is overloaded",
    Unsupported: "the server does not support this call",
    Unavailable: "the server is unavailable",
    TlsError: "the TLS handshake failed",
    ModelUnavailable: "no version of the model is ready",
    Unauthenticated: "not authenticated",
}


def _status_code(status: str | None) -> grpc.StatusCode | None:
    """'StatusCode.UNAVAILABLE' (tritonclient's form), 'UNAVAILABLE' or None -> the code."""
    if not status:
        return None
    return _BY_NAME.get(status.rsplit(".", 1)[-1].strip().upper())


def from_status(
    code: grpc.StatusCode | None,
    message: str,
    *,
    model: str | None = None,
    timeout: float | None = None,
    tls: bool | None = None,
) -> ClientError:
    """The ``ClientError`` for a status code and the server's message (see the module doc).

    ``tls``: whether the channel used TLS (``None``: unknown), to say more about failures that
    look like a TLS mismatch."""
    if code is None:
        # tritonclient refused the request itself, before anything was sent.
        return InvalidInput(
            f"{_model_prefix(model)}tritonclient rejected the request before sending it: {message}",
            model=model,
            server_message=message,
        )
    cls = STATUS_ERRORS.get(code, ServerError)
    lowered = message.lower()
    if code is grpc.StatusCode.UNAVAILABLE:
        if any(m in lowered for m in _OVERLOAD_MESSAGES):
            cls = ServerOverloaded
        elif _RESTRICTED_MESSAGE in lowered:
            cls = PermissionDenied
        elif any(m in lowered for m in _TLS_MESSAGES):
            cls = TlsError
        elif tls is False and _PLAIN_TO_TLS_MESSAGE in lowered:
            message += " (if the server expects TLS, connect with ssl=True / --tls)"
    elif code is grpc.StatusCode.NOT_FOUND and _NO_VERSIONS_MESSAGE in lowered:
        cls = ModelUnavailable
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(
        m in lowered for m in _TOO_LARGE_MESSAGES
    ):
        cls = InvalidInput
        message += " (split the batch: infer_many() sends it in chunks)"
    summary = _SUMMARY.get(cls, "the call failed")
    if cls is DeadlineExceeded and timeout is not None:
        summary = f"no answer within the {timeout:g} s deadline"
    # One line, whatever the server wrote.
    message = " ".join(message.split())
    text = f"{_model_prefix(model)}{summary} ({code.name}): {message}"
    return cls(text, status=code.name, model=model, server_message=message)


def from_exception(
    exc: BaseException,
    *,
    model: str | None = None,
    timeout: float | None = None,
    tls: bool | None = None,
) -> ClientError:
    """Translate a tritonclient / gRPC exception (anything else: ``ServerError``)."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, InferenceServerException):
        status = exc.status()
        code = _status_code(status)
        message = str(exc.message() or "")
        if code is None and status:  # a status string we do not know: still an error
            return ServerError(
                f"{_model_prefix(model)}unexpected status {status!r}: {message}",
                status=status,
                model=model,
                server_message=message,
            )
        return from_status(code, message, model=model, timeout=timeout, tls=tls)
    if isinstance(exc, grpc.RpcError):
        code_fn = getattr(exc, "code", None)
        details_fn = getattr(exc, "details", None)
        code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
        details = details_fn() if callable(details_fn) else str(exc)
        return from_status(code, str(details or ""), model=model, timeout=timeout, tls=tls)
    return ServerError(f"{_model_prefix(model)}unexpected {type(exc).__name__}: {exc}", model=model)


def _model_prefix(model: str | None) -> str:
    return f"model '{model}': " if model else ""
