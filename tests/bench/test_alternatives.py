"""MLServer and BentoML, each in its own environment, serve a user's model with adaptive
batching. Their environments are large (about 500 MB each, several minutes to create): this
test runs where `make bench-envs` created them and is skipped otherwise (so in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_deploy.bench import envs
from triton_deploy.bench.loadgen import GrpcTransport, HttpTransport, closed_loop
from triton_deploy.bench.payloads import grpc_requests, json_bodies, model_info, sample_rows
from triton_deploy.bench.run import _bento_body
from triton_deploy.bench.services import batch_log, bentoml_service, mlserver_service

pytestmark = [pytest.mark.server, pytest.mark.alternatives]


def _need(name: str) -> None:
    env = envs.environment(name)
    if not env.ready():
        pytest.skip(env.missing_reason())


def test_mlserver_serves_the_tree_model_over_v2_grpc(user_repository: Path) -> None:
    _need("mlserver")
    info = model_info(user_repository, "tiny_trees")
    rows, _ = sample_rows(user_repository, info)
    with mlserver_service(info) as service:
        result = closed_loop(
            GrpcTransport(service.url), grpc_requests(info, rows), concurrency=8, seconds=1.0
        )
        log = batch_log(service)
        assert log is not None
        batches = [int(line) for line in log.read_text().split()]
    assert result.requests > 0 and result.errors == 0, result.first_error
    # MLServer's adaptive batching merged requests (its runtime logs the rows of each call)
    assert batches and max(batches) > 1, batches


@pytest.mark.parametrize("model", ["tiny_trees", "tiny_onnx"])
def test_bentoml_serves_both_kinds_over_http(user_repository: Path, model: str) -> None:
    _need("bentoml")
    info = model_info(user_repository, model)
    rows, _ = sample_rows(user_repository, info)
    bodies = [_bento_body(b) for b in json_bodies(info, rows, wrap=None)]
    with bentoml_service(info, workers=2) as service:
        result = closed_loop(HttpTransport(service.url), bodies, concurrency=4, seconds=1.0)
        log = batch_log(service)
        assert log is not None and log.read_text().split(), "the model was never called"
    assert result.requests > 0 and result.errors == 0, result.first_error
