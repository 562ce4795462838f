"""Client-side shadow and weighted endpoints without a server: options, the comparison, the
bookkeeping, the smooth weighted round-robin. With real servers: test_server_shadow.py."""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from triton_deploy.clients import (
    AsyncInferenceClient,
    InferenceClient,
    ShadowConfig,
    Tolerance,
    UsageError,
)
from triton_deploy.clients._base import _SmoothWeights
from triton_deploy.clients._shadow import ShadowRecorder, compare_outputs


# --- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://x:1"}, "ShadowConfig.url must be host:port"),
        ({"sample": 1.5}, "between 0 and 1"),
        ({"sample": -0.1}, ">= 0"),
        ({"sample": float("nan")}, ">= 0"),
        ({"tolerance": (1e-3, 0)}, "must be a Tolerance"),
        ({"tolerances": {"m": 0.1}}, "tolerances['m'] must be a Tolerance"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"max_in_flight": 0}, "max_in_flight must be an integer >= 1"),
    ],
)
def test_a_bad_shadow_config_names_the_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        ShadowConfig(**({"url": "shadow:8001"} | kwargs))


def test_a_bad_tolerance_is_refused() -> None:
    with pytest.raises(UsageError, match=r"Tolerance\.atol"):
        Tolerance(atol=-1)
    with pytest.raises(UsageError, match=r"Tolerance\.rtol"):
        Tolerance(rtol=math.inf)


@pytest.mark.parametrize("cls", [InferenceClient, AsyncInferenceClient])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "a:1", "weights": {"b:1": 1}}, "give url or weights, not both"),
        ({"weights": {}}, "weights must map endpoints to weights"),
        ({"weights": ["a:1"]}, "weights must map endpoints to weights"),
        ({"weights": {"a:1": 0, "b:1": 0}}, "at least one endpoint needs a weight above 0"),
        ({"weights": {"a:1": -5}}, "must be >= 0"),
        ({"weights": {"a:1": "5"}}, "must be a number"),
        ({"weights": {"grpc://a:1": 5}}, "weights: each endpoint must be host:port"),
        ({"shadow": "b:1"}, "shadow must be a ShadowConfig"),
    ],
)
def test_bad_weights_or_shadow_fail_when_the_client_is_made(
    cls: type, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        cls(**kwargs)


def test_a_weighted_client_names_its_endpoints_and_makes_no_connection() -> None:
    client = InferenceClient(weights={"a:8001": 95, "b:8001": 5})
    try:
        assert client.url == "a:8001 (95) + b:8001 (5)"
        assert [r.url for r in client._routes] == ["a:8001", "b:8001"]
        assert client.channels_opened == 0
        assert client.shadow_stats is None
    finally:
        client.close()
    assert InferenceClient().url == "localhost:8001"  # no url, no weights: the default


# --- the split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("weights", [[95, 5], [50, 50], [90, 10], [1, 2, 7], [3, 0]])
def test_smooth_weights_split_every_run_of_calls_as_the_weights_say(weights: list[int]) -> None:
    rotation = _SmoothWeights(weights)
    total = sum(weights)
    picks = [rotation.next() for _ in range(total * 7)]
    assert Counter(picks) == {i: w * 7 for i, w in enumerate(weights) if w}
    # Any window of calls is within one call of the exact share, per endpoint.
    for start in range(0, len(picks) - 40, 13):
        window = Counter(picks[start : start + 40])
        for i, weight in enumerate(weights):
            assert abs(window[i] - 40 * weight / total) <= 1.5, (weights, start, window)


def test_the_minority_endpoint_is_spread_out_not_bunched() -> None:
    rotation = _SmoothWeights([95, 5])
    picks = [rotation.next() for _ in range(200)]
    positions = [i for i, p in enumerate(picks) if p == 1]
    assert len(positions) == 10
    assert all(b - a == 20 for a, b in itertools.pairwise(positions))


# --- the comparison ----------------------------------------------------------------------------
def test_floats_compare_within_the_tolerance_others_exactly() -> None:
    tol = Tolerance(atol=1e-3, rtol=0.0)
    a = {"Y": np.array([[1.0], [2.0]], np.float32), "L": np.array([1, 2], np.int64)}
    same = {"Y": a["Y"] + np.float32(5e-4), "L": a["L"].copy()}
    assert compare_outputs(a, same, tol)[0] is False
    off = {"Y": np.array([[1.0], [2.01]], np.float32), "L": a["L"].copy()}
    diverged, worst, problems = compare_outputs(a, off, tol)
    assert diverged and worst["Y"] == pytest.approx(0.01, rel=1e-3) and worst["L"] == 0.0
    assert problems == ["output 'Y': 1 of 2 elements beyond atol 0.001 + rtol 0, max abs diff 0.01"]
    label = {"Y": a["Y"], "L": np.array([1, 3], np.int64)}
    diverged, worst, problems = compare_outputs(a, label, tol)
    assert diverged and worst["L"] == 1.0 and "1 of 2 elements differ" in problems[0]
    # relative tolerance scales with the primary's value
    big = {"Y": np.array([1000.0], np.float32)}
    assert not compare_outputs(big, {"Y": np.array([1000.5], np.float32)}, Tolerance(0, 1e-3))[0]


def test_missing_outputs_other_shapes_and_nan_diverge() -> None:
    tol = Tolerance()
    a = {"Y": np.zeros((2, 1), np.float32), "S": np.array([b"x"], dtype=object)}
    diverged, worst, problems = compare_outputs(a, {"Y": np.zeros((2, 1), np.float32)}, tol)
    assert diverged and worst["S"] == math.inf and problems == ["output 'S' missing"]
    diverged, worst, _ = compare_outputs(a, {"Y": np.zeros((1, 2), np.float32), "S": a["S"]}, tol)
    assert diverged and worst["Y"] == math.inf
    nan = {"Y": np.array([[np.nan], [0.0]], np.float32), "S": a["S"]}
    assert compare_outputs(a, nan, tol)[0]
    assert not compare_outputs(nan, {"Y": nan["Y"].copy(), "S": a["S"]}, tol)[0]  # NaN == NaN
    assert compare_outputs(a, {"Y": a["Y"], "S": np.array([b"y"], dtype=object)}, tol)[0]


# --- the recorder ------------------------------------------------------------------------------
def test_the_recorder_counts_logs_once_per_interval_and_exports_counters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    config = ShadowConfig("shadow:8001", sample=1.0, registry=registry, max_in_flight=2)
    recorder = ShadowRecorder(config)
    primary = {"Y": np.array([1.0], np.float32)}
    with caplog.at_level(logging.WARNING, logger="triton_deploy.clients.shadow"):
        assert recorder.reserve("m") and recorder.reserve("m")
        assert not recorder.reserve("m")  # a third copy at once: dropped
        recorder.record("m", primary, {"Y": np.array([1.0], np.float32)})
        recorder.record("m", primary, {"Y": np.array([1.5], np.float32)})
        recorder.release()
        recorder.release()
        recorder.record("m", primary, None, error="Unavailable: connection refused")
    report = recorder.report()
    stats = report.models["m"]
    assert (stats.compared, stats.divergent, stats.errors, stats.dropped) == (3, 1, 1, 1)
    assert stats.matched == 1 and stats.worst == {"Y": 0.5}
    assert "the shadow failed: Unavailable" in (stats.last_problem or "")
    assert (report.compared, report.divergent, report.errors, report.dropped) == (3, 1, 1, 1)
    # this recorder's lines only (another test's client threads may still log on this logger)
    lines = [r.getMessage() for r in caplog.records if "at shadow:8001" in r.getMessage()]
    assert len(lines) == 1 and "shadow divergent: model 'm' at shadow:8001" in lines[0], lines

    def sample(name: str, **labels: str) -> float | None:
        value = registry.get_sample_value(name, labels)
        return None if value is None else float(value)

    comparisons = "tdeploy_client_shadow_comparisons_total"
    assert sample(comparisons, model="m", outcome="match") == 1
    assert sample(comparisons, model="m", outcome="divergent") == 1
    assert sample(comparisons, model="m", outcome="error") == 1
    assert sample("tdeploy_client_shadow_dropped_total", model="m") == 1
    assert sample("tdeploy_client_shadow_max_abs_diff", model="m", output="Y") == 0.5


def test_sampling_follows_the_rate() -> None:
    import random

    recorder = ShadowRecorder(ShadowConfig("s:1", sample=0.01, metrics=False), rng=random.Random(7))
    hits = sum(recorder.sampled() for _ in range(100_000))
    assert 800 < hits < 1200
    assert not any(ShadowRecorder(ShadowConfig("s:1", sample=0.0)).sampled() for _ in range(1000))
    assert all(ShadowRecorder(ShadowConfig("s:1", sample=1.0)).sampled() for _ in range(1000))


# --- one cache, two versions -------------------------------------------------------------------
class _Answer:
    """A stand-in for tritonclient's InferResult: only the version and no outputs."""

    def __init__(self, version: str) -> None:
        self.version = version

    def get_response(self) -> Any:
        return type("Response", (), {"model_version": self.version, "outputs": []})()


def _schema(versions: tuple[str, ...], dims: int = 1) -> Any:
    from triton_deploy.clients import ModelSchema, TensorSpec

    return ModelSchema(
        name="m",
        versions=versions,
        platform="onnxruntime_onnx",
        max_batch_size=8,
        inputs=(TensorSpec("X", "FP32", (-1, dims)),),
        outputs=(TensorSpec("Y", "FP32", (-1, 1)),),
    )


def test_answers_from_two_versions_of_one_model_refetch_the_metadata_once_not_every_time() -> None:
    """Behind a gateway that splits requests between a version 1 and a version 2 of the same
    model (a canary), a cached schema that listed only one version was dropped at every answer
    of the other one and fetched again: two extra calls each time, which also skewed a
    round-robin gateway's split (found by tests/rollout/test_canary_under_load.py)."""
    client = InferenceClient("127.0.0.1:1")
    try:
        client._remember("m", "", _schema(("1",)))
        client._decode(_Answer("2"), client._cached("m", ""))  # green answers: a new version?
        assert client._cached("m", "") is None  # so the metadata is fetched again...
        client._remember("m", "", _schema(("1",)))  # ...from blue, which lists only "1"
        merged = client._cached("m", "")
        # the schema as the server gave it; both versions answered with its tensors
        assert merged is not None and merged.versions == ("1",)
        assert client._seen_versions["m"] == {"1", "2"}
        for version in ("1", "2", "1", "2"):
            client._decode(_Answer(version), merged)
            assert client._cached("m", "") is merged  # no more refetches
        client._decode(_Answer("3"), merged)  # a really new version: fetched again
        assert client._cached("m", "") is None
        client._remember("m", "", _schema(("3",), dims=2))  # its inputs changed: no merging
        changed = client._cached("m", "")
        assert changed is not None and changed.versions == ("3",)
        assert client._seen_versions["m"] == {"3"}
    finally:
        client.close()
