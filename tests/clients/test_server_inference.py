"""The client against the real tritonserver: success paths, every error a server can produce,
deadlines, infer_many, the async twin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from clienttools import TcpProxy, digit_images, impressions
from tritonclient.utils import InferenceServerException

from triton_deploy.build.examples.ctr.client import AsyncCtrClient, CtrClient
from triton_deploy.build.examples.digits.client import AsyncDigitsClient, DigitsClient, Prediction
from triton_deploy.clients import (
    AsyncInferenceClient,
    DeadlineExceeded,
    InferenceClient,
    InvalidInput,
    ModelNotFound,
    NotReady,
    RetryPolicy,
    Unavailable,
    arrays_from_records,
)
from triton_deploy.runtime.server import free_port

pytestmark = pytest.mark.server


@pytest.fixture
def client(grpc_url: str) -> Iterator[InferenceClient]:
    with InferenceClient(grpc_url, timeout=30.0) as c:
        yield c


def request_count(url: str, model: str, kind: str = "success") -> int:
    """Requests the server counted for ``model`` (its own statistics, not ours); ``kind`` is
    "success" or "fail" (Triton counts a failed ensemble request more than once)."""
    with grpcclient.InferenceServerClient(url) as raw:
        stats = raw.get_inference_statistics(model, as_json=True)
    return sum(
        int(s["inference_stats"].get(kind, {}).get("count", 0))
        for s in stats.get("model_stats", [])
    )


def raw_infer(url: str, model: str, arrays: dict[str, np.ndarray]) -> None:
    """The same request through plain tritonclient, for comparison."""
    inputs = []
    for name, array in arrays.items():
        datatype = "BYTES" if array.dtype == object else grpcclient.np_to_triton_dtype(array.dtype)
        infer_input = grpcclient.InferInput(name, list(array.shape), datatype)
        infer_input.set_data_from_numpy(array)
        inputs.append(infer_input)
    with grpcclient.InferenceServerClient(url) as raw:
        raw.infer(model, inputs)


# -- success paths ---------------------------------------------------------------------------
def test_digits_ensemble(client: InferenceClient) -> None:
    images = digit_images(5)
    out = client.infer("digits", IMAGES=images)
    assert set(out) == {"LABELS", "PROBS"}
    assert out["LABELS"].shape == (5, 3) and out["LABELS"].dtype == np.int64
    assert out["PROBS"].shape == (5, 3) and out["PROBS"].dtype == np.float32
    assert ((out["LABELS"] >= 0) & (out["LABELS"] <= 9)).all()
    assert (np.diff(out["PROBS"], axis=1) <= 0).all()  # best first
    predictions = DigitsClient(client).classify(images)
    assert len(predictions) == 5 and all(isinstance(p, Prediction) for p in predictions)
    assert [p.label for p in predictions] == out["LABELS"][:, 0].tolist()
    assert predictions[0].top_probabilities == pytest.approx(out["PROBS"][0].tolist())
    # one image, [8, 8], is a batch of one
    assert DigitsClient(client).classify(images[0])[0] == predictions[0]


def test_digits_cnn_direct_model(client: InferenceClient) -> None:
    schema = client.model_schema("digits_cnn")
    assert schema.platform == "onnxruntime_onnx" and schema.max_batch_size == 64
    images = np.random.default_rng(1).random((4, 1, 8, 8), dtype=np.float32)
    out = client.infer("digits_cnn", images=images)
    assert out["logits"].shape == (4, 10) and out["logits"].dtype == np.float32
    only = client.infer("digits_cnn", images=images, outputs=["logits"])
    np.testing.assert_allclose(only["logits"], out["logits"], rtol=1e-5)


def test_ctr_ensemble(client: InferenceClient) -> None:
    records = impressions(20)
    records[3] = {**records[3], "country": "never-seen-before", "site_category": "weird"}
    probs = CtrClient(client).predict(records)
    assert probs.shape == (20,) and probs.dtype == np.float32
    assert ((probs > 0) & (probs < 1)).all()
    assert CtrClient(client).predict([]).shape == (0,)


def test_ctr_xgb_direct_model(client: InferenceClient) -> None:
    schema = client.model_schema("ctr_xgb")
    n_features = schema.inputs[0].shape[1]
    features = np.random.default_rng(2).random((3, n_features), dtype=np.float32)
    out = client.infer("ctr_xgb", {"input__0": features})
    assert out["output__0"].shape == (3, 1)


def test_metadata_is_cached_and_refreshable(client: InferenceClient) -> None:
    first = client.model_schema("digits")
    assert client.model_schema("digits") is first
    fresh = client.model_schema("digits", refresh=True)
    assert fresh is not first and fresh == first
    assert client.model_schema("digits") is fresh


def test_health_and_wait_until_ready(client: InferenceClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and not client.is_model_ready("no_such_model")
    report = client.wait_until_ready(models=["digits", "ctr"], timeout=10)
    assert report.ok and report.models == {"digits": True, "ctr": True}
    started = time.monotonic()
    with pytest.raises(NotReady, match="models not ready: no_such_model") as info:
        client.wait_until_ready(models=["digits", "no_such_model"], timeout=1.0, poll_interval=0.2)
    assert time.monotonic() - started >= 1.0 - 0.2  # it waited (up to the last poll)
    assert info.value.report.not_ready() == ["no_such_model"]


# -- errors the server produces ----------------------------------------------------------------
def test_unknown_model_is_model_not_found(client: InferenceClient) -> None:
    with pytest.raises(ModelNotFound) as info:
        client.infer("no_such_model", x=np.zeros((1, 1), dtype=np.float32))
    assert info.value.status == "NOT_FOUND" and "no_such_model" in str(info.value)
    with pytest.raises(ModelNotFound, match="version 99"):
        client.infer("digits", IMAGES=digit_images(1), version="99")


def test_wrong_dtype_sent_raw_is_rejected_by_the_server(grpc_url: str) -> None:
    with InferenceClient(grpc_url) as client:
        wrong = np.zeros((2, 8, 8), dtype=np.float32)
        with pytest.raises(InvalidInput) as info:
            client.infer("digits", IMAGES=wrong, validate=False)
        assert info.value.status == "INVALID_ARGUMENT"
        assert "UINT8" in str(info.value) and "FP32" in str(info.value)


def test_wrong_shape_sent_raw_is_rejected_by_the_server(client: InferenceClient) -> None:
    with pytest.raises(InvalidInput) as info:
        client.infer("digits", IMAGES=np.zeros((2, 3), dtype=np.uint8), validate=False)
    assert info.value.status == "INVALID_ARGUMENT"


def test_empty_category_is_rejected_by_the_server(client: InferenceClient) -> None:
    records = impressions(2)
    records[1] = {**records[1], "country": ""}
    before = request_count(client.url, "ctr", "fail")
    with pytest.raises(InvalidInput) as info:
        CtrClient(client).predict(records)
    assert info.value.status == "INVALID_ARGUMENT" and "country" in str(info.value)
    ours = request_count(client.url, "ctr", "fail") - before
    # Sent once, like plain tritonclient: not retried, not resent after the metadata check.
    arrays = arrays_from_records(client.model_schema("ctr"), records)
    with pytest.raises(InferenceServerException):
        raw_infer(client.url, "ctr", arrays)
    assert ours == request_count(client.url, "ctr", "fail") - before - ours


def test_client_side_validation_sends_nothing(client: InferenceClient) -> None:
    client.model_schema("digits")
    before = request_count(client.url, "digits", "success") + request_count(
        client.url, "digits", "fail"
    )
    cases = [
        ({"IMAGES": np.zeros((2, 8, 8), dtype=np.float32)}, "expected dtype UINT8"),
        ({"IMAGES": np.zeros((2, 8, 7), dtype=np.uint8)}, r"expected shape \[N, 8, 8\]"),
        ({"IMAGES": digit_images(65)}, "exceeds max_batch_size 64"),
        ({"PIXELS": digit_images(1)}, "has no input 'PIXELS'"),
        ({}, "missing input 'IMAGES'"),
    ]
    for inputs, message in cases:
        with pytest.raises(InvalidInput, match=message) as info:
            client.infer("digits", inputs)
        assert info.value.status is None
    records = impressions(3)
    del records[2]["bid_floor"]
    with pytest.raises(InvalidInput, match="record 2 has no field 'bid_floor'"):
        CtrClient(client).predict(records)
    after = request_count(client.url, "digits", "success") + request_count(
        client.url, "digits", "fail"
    )
    assert after == before


def test_deadline_exceeded_on_a_slow_link(proxy: TcpProxy) -> None:
    with InferenceClient(proxy.url, timeout=10) as client:
        client.model_schema("digits")  # metadata cached before the link slows down
        proxy.delay_s = 5.0
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            client.infer("digits", IMAGES=digit_images(2), timeout=0.3)
        elapsed = time.monotonic() - started
        proxy.delay_s = 0.0
    assert info.value.status == "DEADLINE_EXCEEDED" and "0.3 s" in str(info.value)
    assert 0.3 <= elapsed < 5.0, elapsed  # the deadline, not the (far slower) link, decided


def test_server_down_is_unavailable() -> None:
    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    with InferenceClient(url, retry=RetryPolicy.none()) as client, pytest.raises(Unavailable):
        client.infer("digits", IMAGES=digit_images(1))
    with InferenceClient(url, timeout=1.5) as client, pytest.raises(Unavailable) as info:
        client.is_server_live()
    assert info.value.status == "UNAVAILABLE" and "tdeploy health" in str(info.value)
    assert client.channels_opened == 1  # every attempt on the one channel (see test_retry.py)
    report = InferenceClient(url, timeout=0.5).health(["digits"])
    assert not report.ok and report.error and report.models == {"digits": False}


# -- infer_many --------------------------------------------------------------------------------
def test_infer_many_keeps_order_and_chunks(client: InferenceClient) -> None:
    images = digit_images(150, seed=3)
    expected = client.infer("digits", IMAGES=images[:64])["LABELS"]
    before = request_count(client.url, "digits")
    out = client.infer_many("digits", IMAGES=images, chunk_size=7, max_concurrency=4)
    assert request_count(client.url, "digits") - before == 22  # ceil(150 / 7) requests
    assert out["LABELS"].shape == (150, 3) and out["PROBS"].shape == (150, 3)
    np.testing.assert_array_equal(out["LABELS"][:64], expected)
    singles = np.concatenate(
        [client.infer("digits", IMAGES=images[i : i + 1])["LABELS"] for i in (0, 77, 149)]
    )
    np.testing.assert_array_equal(out["LABELS"][[0, 77, 149]], singles)
    # default chunking: max_batch_size
    before = request_count(client.url, "digits")
    client.infer_many("digits", IMAGES=images)
    assert request_count(client.url, "digits") - before == 3
    # impressions beyond max_batch_size 256
    records = impressions(600, seed=4)
    probs = CtrClient(client).predict(records)
    assert probs.shape == (600,)
    np.testing.assert_allclose(probs[590:], CtrClient(client).predict(records[590:]), rtol=1e-6)


def test_infer_many_stops_at_the_first_error_and_names_the_row_of_the_batch(
    client: InferenceClient,
) -> None:
    records = impressions(700)
    records[300] = {**records[300], "country": ""}  # row 300: the second of ten chunks of 70
    arrays = arrays_from_records(client.model_schema("ctr"), records)
    before = request_count(client.url, "ctr"), request_count(client.url, "ctr", "fail")
    with pytest.raises(InvalidInput) as info:
        client.infer_many("ctr", arrays, chunk_size=70, max_concurrency=1)
    ok = request_count(client.url, "ctr") - before[0]
    failed = request_count(client.url, "ctr", "fail") - before[1]
    # chunks 0-3 succeeded, chunk 4 (rows 280..349) failed, chunks 5-9 were never sent
    assert ok == 4 and failed >= 1, (ok, failed)
    message = str(info.value)
    assert "input 'country' row 300: empty category" in message, message  # not "row 20"
    assert "rows 280..349 of 700" in message and info.value.rows == (280, 350)
    assert info.value.server_message is not None and "row 20:" in info.value.server_message
    # the example client on top of it says the same
    with pytest.raises(InvalidInput, match="input 'country' row 300: empty category"):
        CtrClient(client).predict(records)


# -- the async twin ------------------------------------------------------------------------------
def test_async_twin_gives_the_same_answers(client: InferenceClient) -> None:
    images = digit_images(100, seed=5)
    records = impressions(40, seed=6)
    sync_out = client.infer("digits", IMAGES=images[:10])
    sync_many = client.infer_many("digits", IMAGES=images, chunk_size=16)
    sync_probs = CtrClient(client).predict(records)
    sync_predictions = DigitsClient(client).classify(images[:3])

    async def run() -> None:
        async with AsyncInferenceClient(client.url, timeout=30.0) as aclient:
            assert await aclient.is_server_live() and await aclient.is_server_ready()
            assert (await aclient.wait_until_ready(models=["digits"], timeout=5)).ok
            out = await aclient.infer("digits", IMAGES=images[:10])
            np.testing.assert_array_equal(out["LABELS"], sync_out["LABELS"])
            many = await aclient.infer_many(
                "digits", IMAGES=images, chunk_size=16, max_concurrency=3
            )
            np.testing.assert_array_equal(many["LABELS"], sync_many["LABELS"])
            probs = await AsyncCtrClient(aclient).predict(records)
            np.testing.assert_allclose(probs, sync_probs, rtol=1e-6)
            assert await AsyncDigitsClient(aclient).classify(images[:3]) == sync_predictions
            # concurrent first calls share one metadata fetch and all succeed
            results = await asyncio.gather(
                *(
                    aclient.infer("ctr_xgb", {"input__0": np.zeros((1, 46), np.float32)})
                    for _ in range(8)
                )
            )
            assert len(results) == 8
            # the same errors
            with pytest.raises(ModelNotFound):
                await aclient.infer("no_such_model", x=np.zeros((1,), np.float32))
            with pytest.raises(InvalidInput) as info:
                await aclient.infer(
                    "digits", IMAGES=np.zeros((2, 8, 8), np.float32), validate=False
                )
            assert info.value.status == "INVALID_ARGUMENT"
            with pytest.raises(InvalidInput) as info:
                await aclient.infer("digits", IMAGES=np.zeros((2, 8, 8), np.float32))
            assert info.value.status is None
            bad = impressions(300)
            bad[299] = {**bad[299], "device_type": ""}
            with pytest.raises(InvalidInput, match="device_type"):
                await AsyncCtrClient(aclient).predict(bad)
        async with AsyncInferenceClient(f"127.0.0.1:{free_port()}", timeout=1.0) as down:
            with pytest.raises(Unavailable):
                await down.infer("digits", IMAGES=images[:1])
            assert not (await down.health()).ok

    asyncio.run(run())


def test_async_deadline_exceeded(proxy: TcpProxy) -> None:
    async def run() -> None:
        async with AsyncInferenceClient(proxy.url) as aclient:
            await aclient.model_schema("digits")
            proxy.delay_s = 0.6
            with pytest.raises(DeadlineExceeded) as info:
                await aclient.infer("digits", IMAGES=digit_images(1), timeout=0.3)
            assert info.value.status == "DEADLINE_EXCEEDED"

    asyncio.run(run())
