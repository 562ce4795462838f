"""Client options and chunk planning, checked before any connection is made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from triton_deploy.clients import InferenceClient, ModelSchema, TensorSpec, UsageError
from triton_deploy.clients._base import BaseClient, chunk_slices

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
    with pytest.raises(UsageError, match="root_certificates: no such file"):
        InferenceClient("localhost:1", root_certificates=tmp_path / "ca.pem")


def test_tls_files_turn_ssl_on(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a certificate")
    client = InferenceClient("localhost:1", root_certificates=ca)
    assert client._triton_kwargs["ssl"] is True
    assert client._triton_kwargs["root_certificates"] == str(ca)
    client.close()


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
    "kwargs", [{"timeout": 0}, {"compression": "brotli"}, {"max_concurrency": 0}]
)
def test_invalid_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        InferenceClient("localhost:1", **kwargs)


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
