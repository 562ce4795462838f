"""Every gRPC status and every tritonclient error becomes a specific ``ClientError``."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata
from tritonclient.utils import InferenceServerException

from triton_deploy.clients import (
    Cancelled,
    ClientError,
    DeadlineExceeded,
    InvalidInput,
    ModelNotFound,
    ModelUnavailable,
    PermissionDenied,
    RequestError,
    ServerError,
    ServerOverloaded,
    TlsError,
    TransientError,
    Unauthenticated,
    Unavailable,
    Unsupported,
)
from triton_deploy.clients._errors import STATUS_ERRORS, from_exception, from_status
from triton_deploy.errors import TritonDeployError

# Written out independently of the implementation's table, on purpose.
EXPECTED: dict[str, type[ClientError]] = {
    "OK": ServerError,
    "CANCELLED": Cancelled,
    "UNKNOWN": ServerError,
    "INVALID_ARGUMENT": InvalidInput,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "NOT_FOUND": ModelNotFound,
    "ALREADY_EXISTS": RequestError,
    "PERMISSION_DENIED": PermissionDenied,
    "RESOURCE_EXHAUSTED": ServerOverloaded,
    "FAILED_PRECONDITION": RequestError,
    "ABORTED": ServerError,
    "OUT_OF_RANGE": InvalidInput,
    "UNIMPLEMENTED": Unsupported,
    "INTERNAL": ServerError,
    "UNAVAILABLE": Unavailable,
    "DATA_LOSS": ServerError,
    "UNAUTHENTICATED": Unauthenticated,
}


def test_every_grpc_status_code_is_mapped() -> None:
    codes = {code.name for code in grpc.StatusCode}
    assert len(codes) == 17
    assert {code.name for code in STATUS_ERRORS} == codes
    assert set(EXPECTED) == codes


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_tritonclient_exception_maps_to_its_class(code: grpc.StatusCode) -> None:
    # tritonclient's form: status=str(rpc_error.code()) == "StatusCode.NAME"
    exc = InferenceServerException(msg="server said no", status=str(code), debug_details="x")
    error = from_exception(exc, model="digits")
    assert type(error) is EXPECTED[code.name]
    assert issubclass(type(error), TritonDeployError)
    assert error.status == code.name
    assert error.model == "digits"
    assert error.server_message == "server said no"
    text = str(error)
    assert "digits" in text and "server said no" in text and code.name in text
    assert type(error).hint and type(error).hint in text  # says what to do


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_raw_grpc_error_maps_to_the_same_class(code: grpc.StatusCode) -> None:
    rpc_error = AioRpcError(code, Metadata(), Metadata(), details="details here")
    error = from_exception(rpc_error, model="m")
    assert type(error) is EXPECTED[code.name]
    assert "details here" in str(error)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Exceeds maximum queue size", ServerOverloaded),
        ("Request timeout expired", ServerOverloaded),
        # tdeploy serve's load shedder, in front of Triton
        ("server overloaded: queue full, retry with backoff", ServerOverloaded),
        (
            "This protocol is restricted, expecting header 'triton-grpc-protocol-infer'",
            PermissionDenied,
        ),
        ("failed to connect to all addresses", Unavailable),
        ("Socket closed", Unavailable),
        # gRPC 1.6x-1.8x's words for failed TLS handshakes (observed with grpcio 1.85)
        (
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls "
            "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
            "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer",
            TlsError,
        ),
        ("Ssl handshake failed: SSL_ERROR_SSL: WRONG_VERSION_NUMBER", TlsError),
        ("Peer name localhost2 is not in peer certificate", TlsError),
    ],
)
def test_triton_unavailable_messages(message: str, expected: type[ClientError]) -> None:
    error = from_status(grpc.StatusCode.UNAVAILABLE, message, model="ctr")
    assert type(error) is expected


def test_model_without_loaded_version_is_transient() -> None:
    # What Triton answers while it unloads models on SIGTERM, or while a model loads.
    message = "Request for unknown model: 'digits' has no available versions"
    error = from_status(grpc.StatusCode.NOT_FOUND, message, model="digits")
    assert type(error) is ModelUnavailable and isinstance(error, Unavailable)
    unknown = from_status(grpc.StatusCode.NOT_FOUND, "Request for unknown model: 'x' is not found")
    assert type(unknown) is ModelNotFound


def test_retryability_follows_the_tree() -> None:
    assert issubclass(Unavailable, TransientError)
    assert issubclass(ServerOverloaded, TransientError)
    for cls in (
        InvalidInput,
        ModelNotFound,
        DeadlineExceeded,
        PermissionDenied,
        ServerError,
        TlsError,
    ):
        assert not issubclass(cls, TransientError)


def test_tls_error_says_what_to_check() -> None:
    error = from_status(grpc.StatusCode.UNAVAILABLE, "Tls handshake failed (TSI_PROTOCOL_FAILURE)")
    assert "TLS handshake failed" in str(error) and "root_certificates (--ca)" in str(error)


def test_plain_connection_closed_at_once_suggests_tls() -> None:
    plain = from_status(grpc.StatusCode.UNAVAILABLE, "Socket closed", tls=False)
    assert type(plain) is Unavailable and "ssl=True / --tls" in str(plain)
    unknown = from_status(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    assert "--tls" not in str(unknown)


def test_message_too_large_is_not_retried() -> None:
    error = from_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Received message larger than max (5000000 vs. 4194304)",
    )
    assert type(error) is InvalidInput
    assert "infer_many" in str(error)


def test_tritonclient_error_without_status_is_a_client_side_rejection() -> None:
    exc = InferenceServerException(msg="got unexpected numpy array shape [2], expected [1]")
    error = from_exception(exc, model="digits")
    assert type(error) is InvalidInput
    assert error.status is None
    assert "before sending" in str(error)


def test_unknown_status_string_is_still_an_error() -> None:
    error = from_exception(InferenceServerException(msg="teapot", status="418"))
    assert type(error) is ServerError
    assert "418" in str(error)


def test_deadline_message_names_the_timeout() -> None:
    exc = InferenceServerException(msg="Deadline Exceeded", status="StatusCode.DEADLINE_EXCEEDED")
    error = from_exception(exc, model="digits", timeout=0.25)
    assert isinstance(error, DeadlineExceeded)
    assert "0.25 s" in str(error)


def test_client_errors_pass_through_unchanged() -> None:
    original = InvalidInput("bad", tensor="IMAGES")
    assert from_exception(original) is original


def test_messages_are_one_line() -> None:
    for code in grpc.StatusCode:
        error = from_status(code, "one line", model="m")
        assert "\n" not in str(error)
