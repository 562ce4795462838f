"""Client-side shadow and weighted endpoints against two real tritonservers.

v1 and v2 of a small ONNX model ``affine`` differ only where an input is above 0.5 (v2 adds
0.01 there), more than the tolerance given (atol 1e-3): the shadow must report exactly the calls
that carried such an input, with the worst difference, in its stats, its log line and its
prometheus counters; and the primary's answers stay v1's. Weighted endpoints split calls per
request, exactly as the weights say.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper
from prometheus_client import CollectorRegistry
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.clients import (
    AsyncInferenceClient,
    InferenceClient,
    ShadowConfig,
    ShadowReport,
    Tolerance,
)
from triton_deploy.runtime.server import TritonServer, free_port, listening_socket

pytestmark = pytest.mark.server

MODEL = "affine"
TOLERANCE = Tolerance(atol=1e-3, rtol=0.0)


def affine_repository(root: Path, version: int) -> Path:
    """Y = 2 X + 1 (v1); v2 adds 0.01 where X > 0.5. V = the version, an exact output."""
    bump = 0.01 if version == 2 else 0.0
    inits = [
        helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        helper.make_tensor("half", TensorProto.FLOAT, [1], [0.5]),
        helper.make_tensor("bump", TensorProto.FLOAT, [1], [bump]),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["X", "two"], ["x2"]),
            helper.make_node("Add", ["x2", "one"], ["base"]),
            helper.make_node("Greater", ["X", "half"], ["above"]),
            helper.make_node("Cast", ["above"], ["abovef"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["abovef", "bump"], ["extra"]),
            helper.make_node("Add", ["base", "extra"], ["Y"]),
            helper.make_node("Cast", ["above"], ["L"], to=TensorProto.INT64),
        ],
        MODEL,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 1])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("L", TensorProto.INT64, ["batch", 1]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder = root / MODEL / str(version)
    folder.mkdir(parents=True)
    onnx.save(model, folder / "model.onnx")
    config = mc.ModelConfig(
        name=MODEL,
        platform="onnxruntime_onnx",
        max_batch_size=8,
        input=[mc.ModelInput(name="X", data_type=mc.TYPE_FP32, dims=[1])],
        output=[
            mc.ModelOutput(name="Y", data_type=mc.TYPE_FP32, dims=[1]),
            mc.ModelOutput(name="L", data_type=mc.TYPE_INT64, dims=[1]),
        ],
    )
    (root / MODEL / "config.pbtxt").write_text(text_format.MessageToString(config))
    return root


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, TritonServer]]:
    root = tmp_path_factory.mktemp("affine")
    started: dict[int, TritonServer] = {}
    try:
        for version in (1, 2):
            server = TritonServer(affine_repository(root / f"v{version}", version))
            server.start()
            started[version] = server
        yield started
    finally:
        for server in started.values():
            server.stop()


def inputs(n: int, seed: int = 3) -> list[np.ndarray]:
    """``n`` batches of 4 inputs in [0, 1): some calls carry an input above 0.5, some not."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 0.62, size=(4, 1)).astype(np.float32) for _ in range(n)]


def wait_compared(stats: object, n: int, timeout: float = 60.0) -> ShadowReport:
    deadline = time.monotonic() + timeout
    while True:
        report = stats() if callable(stats) else stats
        assert isinstance(report, ShadowReport)
        if report.compared >= n or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def check_report(
    report: ShadowReport, batches: list[np.ndarray], registry: CollectorRegistry
) -> None:
    diverging = sum(bool((x > 0.5).any()) for x in batches)
    assert 0 < diverging < len(batches)  # the test proves something both ways
    stats = report.models[MODEL]
    assert (stats.compared, stats.errors, stats.dropped) == (len(batches), 0, 0)
    assert stats.divergent == diverging
    assert stats.worst["Y"] == pytest.approx(0.01, abs=1e-5)
    assert stats.worst["L"] == 0.0
    assert "output 'Y'" in (stats.last_problem or "") and "beyond atol 0.001" in stats.last_problem

    def counter(outcome: str) -> float | None:
        return registry.get_sample_value(
            "tdeploy_client_shadow_comparisons_total", {"model": MODEL, "outcome": outcome}
        )

    assert counter("divergent") == diverging
    assert counter("match") == len(batches) - diverging
    assert registry.get_sample_value(
        "tdeploy_client_shadow_max_abs_diff", {"model": MODEL, "output": "Y"}
    ) == pytest.approx(0.01, abs=1e-5)


def test_shadow_reports_the_calls_where_v2_differs_beyond_the_tolerance(
    servers: dict[int, TritonServer], caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    shadow = ShadowConfig(
        servers[2].grpc_url,
        sample=1.0,
        tolerances={MODEL: TOLERANCE},
        registry=registry,
        max_in_flight=64,
    )
    batches = inputs(30)
    with (
        caplog.at_level(logging.WARNING, logger="triton_deploy.clients.shadow"),
        InferenceClient(servers[1].grpc_url, shadow=shadow) as client,
    ):
        for x in batches:
            out = client.infer(MODEL, X=x)
            np.testing.assert_allclose(out["Y"], 2 * x + 1, atol=1e-6)  # v1's answer, always
        report = wait_compared(lambda: client.shadow_stats, len(batches))
    check_report(report, batches, registry)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and f"shadow divergent: model '{MODEL}' at {servers[2].grpc_url}" in lines[0]
    assert len(lines) == 1  # one line per model per log interval (10 s)


def test_async_shadow_reports_the_same(servers: dict[int, TritonServer]) -> None:
    registry = CollectorRegistry()
    shadow = ShadowConfig(
        servers[2].grpc_url,
        sample=1.0,
        tolerances={MODEL: TOLERANCE},
        registry=registry,
        max_in_flight=64,
    )
    batches = inputs(30, seed=5)

    async def run() -> ShadowReport:
        async with AsyncInferenceClient(servers[1].grpc_url, shadow=shadow) as client:
            for x in batches:
                out = await client.infer(MODEL, X=x)
                np.testing.assert_allclose(out["Y"], 2 * x + 1, atol=1e-6)
            deadline = time.monotonic() + 60
            while (client.shadow_stats or ShadowReport("", {})).compared < len(batches):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            report = client.shadow_stats
            assert report is not None
            return report

    check_report(asyncio.run(run()), batches, registry)


def test_a_shadow_that_is_down_or_slow_never_fails_or_delays_the_primary(
    servers: dict[int, TritonServer], caplog: pytest.LogCaptureFixture
) -> None:
    # A shadow that takes connections and never answers: every copy waits for its deadline.
    silent = listening_socket(backlog=64)
    nowhere = f"127.0.0.1:{silent.getsockname()[1]}"
    shadow = ShadowConfig(nowhere, sample=1.0, timeout=0.5, max_in_flight=2, metrics=False)
    with silent, InferenceClient(servers[1].grpc_url, shadow=shadow) as client:
        took = []
        for x in inputs(40):
            started = time.perf_counter()
            out = client.infer(MODEL, X=x)
            took.append(time.perf_counter() - started)
            np.testing.assert_allclose(out["Y"], 2 * x + 1, atol=1e-6)
        report = client.shadow_stats
        assert report is not None
        deadline = time.monotonic() + 30
        while report.compared + report.dropped < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
            report = client.shadow_stats
            assert report is not None
    stats = report.models[MODEL]
    assert stats.compared + stats.dropped == 40
    assert stats.errors == stats.compared > 0 and stats.dropped > 0  # at most 2 in flight
    assert "the shadow failed: DeadlineExceeded" in (stats.last_problem or "")
    assert max(took) < 0.5, took  # no primary call waited for the shadow's 0.5 s deadline
    # One rate-limited line from the shadow, none per failed copy from its client.
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_shadow_of_the_same_version_matches_everything(servers: dict[int, TritonServer]) -> None:
    shadow = ShadowConfig(
        servers[1].grpc_url, sample=1.0, tolerance=TOLERANCE, metrics=False, max_in_flight=64
    )
    batches = inputs(10)
    with InferenceClient(servers[1].grpc_url, shadow=shadow) as client:
        for x in batches:
            client.infer_many(MODEL, X=np.concatenate([x, x]), chunk_size=4)
        report = wait_compared(lambda: client.shadow_stats, len(batches))
    assert report.compared == len(batches) and report.divergent == 0 and report.errors == 0


@pytest.mark.parametrize("weights", [(80, 20), (95, 5)])
def test_weights_split_calls_per_request_exactly(
    servers: dict[int, TritonServer], weights: tuple[int, int]
) -> None:
    split = {servers[1].grpc_url: weights[0], servers[2].grpc_url: weights[1]}
    x = np.array([[0.7]], np.float32)  # v2 answers 2.41, v1 2.4
    with InferenceClient(weights=split) as client:
        report = client.wait_until_ready(models=[MODEL], timeout=30)
        assert report.ok and report.url == client.url
        answers = [round(float(client.infer(MODEL, X=x)["Y"][0, 0]), 3) for _ in range(200)]
        assert client.channels_opened == 2  # one per endpoint, kept
    counts = {v: answers.count(v) for v in set(answers)}
    assert counts == {2.4: 200 * weights[0] // 100, 2.41: 200 * weights[1] // 100}


def test_async_weights_split_the_same_and_health_asks_every_endpoint(
    servers: dict[int, TritonServer],
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"

    async def run() -> tuple[list[float], bool, str | None]:
        split = {servers[1].grpc_url: 90, servers[2].grpc_url: 10}
        async with AsyncInferenceClient(weights=split) as client:
            x = np.array([[0.7]], np.float32)
            answers = [
                round(float((await client.infer(MODEL, X=x))["Y"][0, 0]), 3) for _ in range(100)
            ]
        async with AsyncInferenceClient(
            weights={servers[1].grpc_url: 1, nowhere: 1}, timeout=1.0
        ) as half_down:
            report = await half_down.health([MODEL])
        return answers, report.ok, report.error

    answers, ok, error = asyncio.run(run())
    assert answers.count(2.4) == 90 and answers.count(2.41) == 10
    assert not ok and error is not None and nowhere in error
