"""Triton's queue policy rejections, from a server whose queue we configure ourselves."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from triton_deploy.clients import (
    AsyncInferenceClient,
    ClientError,
    InferenceClient,
    RetryBudget,
    RetryPolicy,
    ServerOverloaded,
)
from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server

MODEL = "digits_cnn"
# The batcher holds requests up to 200 ms to fill a batch; at most 2 may wait; a request may
# ask for a shorter queue timeout.
QUEUE = """dynamic_batching {
  max_queue_delay_microseconds: 200000
  default_queue_policy {
    default_timeout_microseconds: 10000000
    allow_timeout_override: true
    max_queue_size: 2
  }
}"""


@pytest.fixture(scope="module")
def queued_server(
    tmp_path_factory: pytest.TempPathFactory, model_repository: Path
) -> Iterator[str]:
    repository = tmp_path_factory.mktemp("queued") / "repository"
    shutil.copytree(model_repository / MODEL, repository / MODEL)
    config = repository / MODEL / "config.pbtxt"
    text, n = re.subn(r"dynamic_batching \{[^{}]*\}", QUEUE, config.read_text())
    assert n == 1, "digits_cnn's config has no flat dynamic_batching block to replace"
    config.write_text(text)
    with TritonServer(repository) as server:
        yield server.grpc_url


def images(n: int = 1) -> np.ndarray:
    return np.zeros((n, 1, 8, 8), dtype=np.float32)


def test_queue_timeout_is_server_overloaded(queued_server: str) -> None:
    with InferenceClient(queued_server, retry=RetryPolicy.none()) as client:
        with pytest.raises(ServerOverloaded) as info:
            client.infer(MODEL, images=images(), queue_timeout=0.001)
        assert info.value.status == "UNAVAILABLE"
        assert "Request timeout expired" in str(info.value)
        assert client.infer(MODEL, images=images())["logits"].shape == (1, 10)


async def _burst(
    url: str, n: int, retry: RetryPolicy, budget: RetryBudget | None = None
) -> list[object]:
    async with AsyncInferenceClient(url, retry=retry, retry_budget=budget, timeout=30) as client:
        await client.model_schema(MODEL)
        calls = [client.infer(MODEL, images=images()) for _ in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)


def test_queue_full_is_server_overloaded_and_retried(queued_server: str) -> None:
    results = asyncio.run(_burst(queued_server, 8, RetryPolicy.none()))
    rejected = [r for r in results if isinstance(r, ClientError)]
    assert rejected and all(isinstance(r, ServerOverloaded) for r in rejected), rejected
    assert all("Exceeds maximum queue size" in str(r) for r in rejected)
    # with retries (backoff and jitter) every call gets through, within its deadline (the
    # retry budget, which would stop a retry storm, is lifted here: see test_retry.py)
    patient = RetryPolicy(max_attempts=100, initial_backoff_s=0.05, max_backoff_s=0.3)
    results = asyncio.run(_burst(queued_server, 8, patient, RetryBudget.unlimited()))
    assert all(isinstance(r, dict) for r in results), [
        r for r in results if not isinstance(r, dict)
    ]
