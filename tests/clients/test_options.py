"""Client options, call arguments and chunk planning, checked before any connection is made.

Every client here points at a port where nothing listens: a check that let the call through
would end in ``Unavailable``, not in the ``UsageError`` the tests expect.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from triton_deploy.clients import (
    InferenceClient,
    ModelSchema,
    RetryPolicy,
    TensorSpec,
    UsageError,
)
from triton_deploy.clients._base import BaseClient, chunk_slices
from triton_deploy.runtime.server import free_port

SCHEMA = ModelSchema(
    name="digits",
    versions=("1",),
    platform="ensemble",
    max_batch_size=64,
    inputs=(TensorSpec("IMAGES", "UINT8", (-1, 8, 8)),),
    outputs=(TensorSpec("LABELS", "INT64", (-1, 3)),),
)


@pytest.mark.parametrize("url", ["", "http://localhost:8001", "grpc://h:1"])
def test_url_must_be_host_port(url: str) -> None:
    with pytest.raises(UsageError, match="host:port"):
        InferenceClient(url)


def test_missing_tls_file_is_reported_at_construction(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"root_certificates \(--ca\): no such file"):
        InferenceClient("localhost:1", root_certificates=tmp_path / "ca.pem")


def test_tls_files_turn_ssl_on(tls_files: dict[str, Path]) -> None:
    client = InferenceClient("localhost:1", root_certificates=tls_files["ca_crt"])
    assert client._triton_kwargs["ssl"] is True and client.tls
    assert client._triton_kwargs["root_certificates"] == str(tls_files["ca_crt"])
    client.close()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"private_key": "client_key"}, r"private_key \(--key\) without certificate_chain"),
        ({"certificate_chain": "client_crt"}, r"certificate_chain \(--cert\) without private_key"),
        ({"root_certificates": "client_key"}, "does not hold PEM certificates"),
        ({"private_key": "client_crt", "certificate_chain": "client_crt"}, "PEM private key"),
        (
            {"private_key": "server_key", "certificate_chain": "client_crt"},
            "the private key does not match the certificate chain",
        ),
    ],
)
def test_tls_mistakes_are_usage_errors_before_any_call(
    tls_files: dict[str, Path], files: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        InferenceClient("127.0.0.1:1", **{k: tls_files[v] for k, v in files.items()})


def test_a_key_without_a_certificate_no_longer_aborts_the_process(
    tls_files: dict[str, Path],
) -> None:
    """gRPC core aborted the interpreter (SIGABRT, exit 134, "Check failed: cert_chain !=
    nullptr") on the first call; now the constructor says what is wrong."""
    code = (
        "import sys\n"
        "from triton_deploy.clients import InferenceClient, UsageError\n"
        "try:\n"
        f"    InferenceClient('127.0.0.1:1', private_key={str(tls_files['client_key'])!r}, timeout=1)"
        ".is_server_live()\n"
        "except UsageError as error:\n"
        "    print(error)\n"
        "    sys.exit(7)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, (done.returncode, done.stderr[-2000:])
    assert "private_key (--key) without certificate_chain (--cert)" in done.stdout
    assert "Check failed" not in done.stderr


def test_tdeploy_health_with_a_key_but_no_certificate_exits_1(tls_files: dict[str, Path]) -> None:
    tdeploy = Path(sys.executable).with_name("tdeploy")
    done = subprocess.run(
        [
            str(tdeploy),
            "health",
            "--url",
            f"127.0.0.1:{free_port()}",
            "--key",
            str(tls_files["client_key"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: TLS: private_key (--key) without certificate_chain (--cert): a client "
        "certificate needs both (or neither, for a server that does not ask for one)"
    ], done.stderr


def test_channel_args_extend_and_override_the_defaults() -> None:
    client = InferenceClient("localhost:1", channel_args=[("grpc.max_reconnect_backoff_ms", 50)])
    args = dict(client._triton_kwargs["channel_args"])
    assert args["grpc.max_reconnect_backoff_ms"] == 50
    assert args["grpc.use_local_subchannel_pool"] == 1
    assert args["grpc.max_receive_message_length"] == 2**31 - 1


def test_headers_are_lowercased_and_merged() -> None:
    client = InferenceClient("localhost:1", headers={"Authorization": "Bearer a"})
    assert client._headers(None) == {"authorization": "Bearer a"}
    assert client._headers({"X-Trace": "1", "AUTHORIZATION": "Bearer b"}) == {
        "authorization": "Bearer b",
        "x-trace": "1",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": "soon"},
        {"timeout": float("nan")},
        {"compression": "brotli"},
        {"max_concurrency": 0},
        {"max_concurrency": True},
        {"max_connection_age_s": 0},
        {"metadata_ttl_s": -1},
        {"headers": {"X Trace": "1"}},
        {"headers": {"grpc-timeout": "1"}},
        {"headers": {"x-id": "two\nlines"}},
        {"headers": {"x-id": 5}},
        {"retry": "none"},
        {"retry_budget": 10},
    ],
    ids=repr,
)
def test_invalid_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        InferenceClient("localhost:1", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def nowhere() -> Iterator[InferenceClient]:
    with InferenceClient(f"127.0.0.1:{free_port()}", retry=RetryPolicy.none(), timeout=1) as c:
        c._remember("digits", "", SCHEMA)  # metadata known: the checks below are the client's
        yield c


IMAGES = np.zeros((2, 8, 8), np.uint8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"priority": -1}, "priority must be an integer >= 0"),
        ({"priority": 1.5}, "priority must be an integer >= 0"),
        ({"request_id": 5}, "request_id must be a string"),
        ({"outputs": [1]}, "outputs must be output names"),
        ({"outputs": "LABELS"}, "outputs must be a list of output names"),
        ({"queue_timeout": -1}, "queue_timeout must be > 0 seconds"),
        ({"queue_timeout": 0}, "queue_timeout must be > 0 seconds"),
        ({"timeout": -2}, "timeout must be > 0 seconds"),
        ({"version": 1}, "version must be a string"),
        ({"headers": {"Bad Key": "x"}}, "'Bad Key' is not a valid gRPC metadata key"),
        ({"compression": "zstd"}, "compression must be one of"),
    ],
    ids=repr,
)
def test_bad_call_arguments_are_usage_errors(
    nowhere: InferenceClient, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        nowhere.infer("digits", IMAGES=IMAGES, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be an integer >= 1"),
        ({"chunk_size": 0}, "chunk_size must be between 1 and"),
        ({"outputs": [None]}, "outputs must be output names"),
    ],
    ids=repr,
)
def test_bad_infer_many_arguments_are_usage_errors(
    nowhere: InferenceClient, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        nowhere.infer_many("digits", IMAGES=np.zeros((100, 8, 8), np.uint8), **kwargs)


def test_infer_many_of_no_rows_sends_nothing(nowhere: InferenceClient) -> None:
    out = nowhere.infer_many("digits", IMAGES=np.zeros((0, 8, 8), np.uint8))
    assert set(out) == {"LABELS"}
    assert out["LABELS"].shape == (0, 3) and out["LABELS"].dtype == np.int64


def test_model_must_be_a_name(nowhere: InferenceClient) -> None:
    with pytest.raises(UsageError, match="model must be a model name"):
        nowhere.infer(None, IMAGES=IMAGES)  # type: ignore[arg-type]


def test_queue_timeout_is_sent_in_microseconds(nowhere: InferenceClient) -> None:
    assert nowhere._options("m", queue_timeout=0.25).queue_timeout_us == 250_000
    assert nowhere._options("m", queue_timeout=1e-9).queue_timeout_us == 1


def test_server_row_numbers_become_rows_of_the_whole_batch() -> None:
    from triton_deploy.clients import InvalidInput
    from triton_deploy.clients._errors import from_status

    error = from_status(
        grpc.StatusCode.INVALID_ARGUMENT, "input 'country' row 20: empty category", model="ctr"
    )
    assert isinstance(error, InvalidInput)
    moved = BaseClient._in_chunk(error, slice(280, 350), 700)
    assert isinstance(moved, InvalidInput) and moved.rows == (280, 350)
    assert "row 300: empty category" in str(moved) and "row 20" not in str(moved)
    assert "(INVALID_ARGUMENT; request with rows 280..349 of 700)" in str(moved)
    assert moved.server_message == "input 'country' row 20: empty category"
    assert str(moved).count(InvalidInput.hint) == 1
    assert BaseClient._in_chunk(error, slice(0, 70), 70) is error  # one request: as it is


def test_closed_client_refuses_calls() -> None:
    client = InferenceClient("localhost:1")
    client.close()
    with pytest.raises(UsageError, match="closed"):
        client.is_server_live()


def test_inputs_given_twice() -> None:
    with pytest.raises(UsageError, match="given twice"):
        BaseClient._merge_inputs({"IMAGES": 1}, {"IMAGES": 2})
    with pytest.raises(UsageError, match="mapping"):
        BaseClient._merge_inputs([1, 2], {})


def test_chunk_slices_cover_everything_in_order() -> None:
    assert chunk_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert chunk_slices(4, 4) == [slice(0, 4)]
    rows = np.arange(1000)
    for size in (1, 7, 64, 999, 1000, 5000):
        parts = chunk_slices(len(rows), size)
        assert all(len(rows[p]) <= size for p in parts)
        assert np.array_equal(np.concatenate([rows[p] for p in parts]), rows)


def test_chunk_size_is_bounded_by_max_batch_size() -> None:
    assert len(BaseClient._chunk_slices(130, SCHEMA, None)) == 3
    assert len(BaseClient._chunk_slices(130, SCHEMA, 10)) == 13
    with pytest.raises(UsageError, match="max_batch_size 64"):
        BaseClient._chunk_slices(130, SCHEMA, 65)


def test_concat_keeps_chunk_order() -> None:
    parts = [{"y": np.array([[i], [i + 0.5]])} for i in range(3)]
    out = BaseClient._concat(parts)
    assert out["y"][:, 0].tolist() == [0, 0.5, 1, 1.5, 2, 2.5]
