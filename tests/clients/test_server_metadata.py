"""The metadata cache against a server whose model changes underneath the client."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from triton_deploy.clients import InferenceClient, InvalidInput, ModelSchema
from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server

MODEL = "ctr_xgb"


@pytest.fixture
def changing_server(model_repository: Path, tmp_path: Path) -> Iterator[tuple[TritonServer, Path]]:
    """A server in explicit model-control mode over a copy of ``ctr_xgb`` we may edit."""
    repository = tmp_path / "repository"
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    args = ["--model-control-mode=explicit", f"--load-model={MODEL}"]
    with TritonServer(repository, extra_args=args) as server:
        yield server, repository / MODEL


def reload(server: TritonServer) -> None:
    with grpcclient.InferenceServerClient(server.grpc_url) as raw:
        raw.load_model(MODEL, headers=server.admin_grpc_headers)  # the admin API is restricted


def features(client: InferenceClient, n: int) -> np.ndarray:
    width = client.model_schema(MODEL).inputs[0].shape[1]
    return np.random.default_rng(n).random((n, width), dtype=np.float32)


def test_new_version_is_noticed_from_the_response(
    changing_server: tuple[TritonServer, Path],
) -> None:
    server, model_dir = changing_server
    with InferenceClient(server.grpc_url, metadata_ttl_s=None) as client:
        x = features(client, 3)
        client.infer(MODEL, input__0=x)
        assert client.model_schema(MODEL).versions == ("1",)
        shutil.copytree(model_dir / "1", model_dir / "2")
        reload(server)  # the version policy serves only the latest: 2
        out = client.infer(MODEL, input__0=x)  # answered by version 2: cache forgotten
        assert out["output__0"].shape == (3, 1)
        assert client._cached(MODEL, "") is None
        assert client.model_schema(MODEL).versions == ("2",)


def test_changed_config_is_refetched_after_a_server_rejection(
    changing_server: tuple[TritonServer, Path],
) -> None:
    server, model_dir = changing_server
    with InferenceClient(server.grpc_url, metadata_ttl_s=None) as client:
        x = features(client, 10)
        assert client.model_schema(MODEL).max_batch_size == 256
        config = model_dir / "config.pbtxt"
        text = re.sub(r"max_batch_size: \d+", "max_batch_size: 4", config.read_text())
        text = re.sub(r"\n\s*preferred_batch_size: \d+", "", text)
        text = re.sub(r"batch_size: (\d+)", lambda m: f"batch_size: {min(int(m[1]), 4)}", text)
        config.write_text(text)
        reload(server)
        # The stale cache lets a batch of 10 through; the server refuses it; the client
        # refetches, sees max_batch_size 4 and says so in its own words.
        with pytest.raises(InvalidInput, match="batch of 10 exceeds max_batch_size 4") as info:
            client.infer(MODEL, input__0=x)
        assert info.value.status is None
        assert client.model_schema(MODEL).max_batch_size == 4
        # infer_many re-plans its chunks for the new limit, even from a stale cache
        client._remember(MODEL, "", _with_max_batch(client, 256))
        out = client.infer_many(MODEL, input__0=x)
        assert out["output__0"].shape == (10, 1)
        assert client.model_schema(MODEL).max_batch_size == 4


def test_metadata_expires_after_its_ttl(changing_server: tuple[TritonServer, Path]) -> None:
    server, _ = changing_server
    with InferenceClient(server.grpc_url, metadata_ttl_s=0.2) as client:
        first = client.model_schema(MODEL)
        assert client.model_schema(MODEL) is first
        time.sleep(0.3)
        again = client.model_schema(MODEL)
        assert again is not first and again == first


def _with_max_batch(client: InferenceClient, max_batch_size: int) -> ModelSchema:
    return replace(client.model_schema(MODEL), max_batch_size=max_batch_size)
