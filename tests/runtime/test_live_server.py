"""The example repository on the real tritonserver, over real gRPC."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from triton_deploy.build.spec import load_spec
from triton_deploy.build.verify import verify_server
from triton_deploy.runtime.server import TritonServer

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]


def _tensor(name: str, value: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
    tensor.set_data_from_numpy(value)
    return tensor


def impressions(n: int = 2, **override: np.ndarray) -> dict[str, np.ndarray]:
    columns = {
        "hour_of_day": np.full((n, 1), 20, np.float32),
        "ad_position": np.ones((n, 1), np.float32),
        "user_age": np.full((n, 1), 31, np.float32),
        "bid_floor": np.full((n, 1), 0.4, np.float32),
        "device_type": np.array([[b"mobile"]] * n, dtype=object),
        "site_category": np.array([[b"travel"]] * n, dtype=object),
        "ad_category": np.array([[b"travel"]] * n, dtype=object),
        "country": np.array([["Ísland".encode()]] * n, dtype=object),  # unseen: the 'other' slot
    }
    columns.update(override)
    return columns


@pytest.fixture(scope="module")
def client(triton_server: TritonServer) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton_server.grpc_url)


def test_everything_but_tensorrt_is_served_and_tensorrt_is_reported(
    triton_server: TritonServer,
) -> None:
    assert sorted(triton_server.loaded) == [
        "ctr",
        "ctr_features",
        "ctr_xgb",
        "digits",
        "digits_cnn",
        "digits_postprocess",
        "digits_preprocess",
    ]
    assert "needs an NVIDIA GPU" in triton_server.skipped["digits_cnn_trt"]


def test_verify_every_model_against_its_source_framework(
    triton_server: TritonServer, model_repository: Path
) -> None:
    report = verify_server(
        triton_server.grpc_url, model_repository, load_spec(ROOT / "build/models.yaml")
    )
    assert report.passed, [r for r in report.rows if not r.passed]
    checked = {r.model for r in report.rows if r.note != "skipped"}
    assert checked == set(triton_server.loaded)


def test_ensembles_answer_with_sensible_values(client: grpcclient.InferenceServerClient) -> None:
    from triton_deploy.build.examples.digits.recipe import load_splits

    splits = load_splits(seed=20261122)
    result = client.infer("digits", [_tensor("IMAGES", splits.test_images[:64])])
    labels, probs = result.as_numpy("LABELS"), result.as_numpy("PROBS")
    assert labels.shape == (64, 3) and probs.shape == (64, 3)
    assert (labels[:, 0] == splits.test_labels[:64]).mean() >= 0.95
    assert np.all(np.diff(probs, axis=1) <= 0)  # best first
    ctr = client.infer("ctr", [_tensor(k, v) for k, v in impressions(4).items()])
    click = ctr.as_numpy("CLICK_PROB")
    assert click.shape == (4, 1) and np.all((click > 0) & (click < 1))


BAD_REQUESTS: list[tuple[str, str, Callable[[], list[grpcclient.InferInput]], str]] = [
    ("wrong shape", "digits", lambda: [_tensor("IMAGES", np.zeros((2, 3), np.uint8))], "'IMAGES'"),
    (
        "wrong dtype",
        "digits",
        lambda: [_tensor("IMAGES", np.zeros((2, 8, 8), np.float32))],
        "'IMAGES' data-type is 'FP32'",
    ),
    (
        "unknown tensor",
        "digits",
        lambda: [_tensor("PIXELS", np.zeros((2, 8, 8), np.uint8))],
        "'PIXELS'",
    ),
    (
        "missing tensor",
        "ctr",
        lambda: [_tensor(k, v) for k, v in impressions().items() if k != "country"],
        "'country'",
    ),
    (
        "batch over max_batch_size",
        "digits",
        lambda: [_tensor("IMAGES", np.zeros((65, 8, 8), np.uint8))],
        "batch-size must be <= 64",
    ),
    (
        "empty batch",
        "digits",
        lambda: [_tensor("IMAGES", np.zeros((0, 8, 8), np.uint8))],
        "'IMAGES'",
    ),
    (
        "NaN feature",
        "ctr",
        lambda: [
            _tensor(k, v)
            for k, v in impressions(user_age=np.array([[30], [np.nan]], np.float32)).items()
        ],
        "input 'user_age' row 1: nan is not a finite number",
    ),
    (
        "missing categorical",
        "ctr",
        lambda: [
            _tensor(k, v)
            for k, v in impressions(
                device_type=np.array([[b"mobile"], [b""]], dtype=object)
            ).items()
        ],
        "input 'device_type' row 1: empty category",
    ),
    (
        "non-UTF-8 categorical",
        "ctr",
        lambda: [
            _tensor(k, v)
            for k, v in impressions(
                country=np.array([[b"\xff\xfeUS"], [b"US"]], dtype=object)
            ).items()
        ],
        "input 'country' row 0: not valid UTF-8",
    ),
    (
        "NaN logits",
        "digits_postprocess",
        lambda: [_tensor("logits", np.full((1, 10), np.nan, np.float32))],
        "'logits' holds NaN",
    ),
]


@pytest.mark.parametrize(
    ("case", "model", "make", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_is_a_clear_invalid_argument_and_the_server_keeps_serving(
    client: grpcclient.InferenceServerClient,
    triton_server: TritonServer,
    case: str,
    model: str,
    make: Callable[[], list[grpcclient.InferInput]],
    message: str,
) -> None:
    with pytest.raises(InferenceServerException) as err:
        client.infer(model, make())
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT", err.value
    assert message in err.value.message()
    assert triton_server.is_ready()
    good = client.infer("digits", [_tensor("IMAGES", np.zeros((1, 8, 8), np.uint8))])
    assert good.as_numpy("LABELS").shape == (1, 3)


def test_nan_is_a_missing_value_for_fil_as_in_the_native_backend(
    client: grpcclient.InferenceServerClient, model_repository: Path
) -> None:
    """NaN means "missing" (XGBoost's default path at each split), as in the native FIL
    backend: the served probabilities equal xgboost's own for the same rows. (Checking only
    that outputs are finite would pass a backend that replaced NaN by 0.)"""
    import xgboost

    rng = np.random.default_rng(3)
    features = rng.random((64, 46)).astype(np.float32) * 10
    features[rng.random(features.shape) < 0.3] = np.nan  # 30 % missing, scattered
    features[0] = np.nan  # one row with nothing known
    booster = xgboost.Booster()
    booster.load_model(str(model_repository / "ctr_xgb" / "1" / "xgboost.json"))
    expected = booster.inplace_predict(features, missing=np.nan, validate_features=False)
    result = client.infer("ctr_xgb", [_tensor("input__0", features)])
    served = result.as_numpy("output__0")[:, 0]
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-7)
    zeros = booster.inplace_predict(np.nan_to_num(features), validate_features=False)
    assert np.abs(served - zeros).max() > 1e-3  # NaN is not treated as 0


def test_one_bad_request_in_a_dynamic_batch_fails_alone(
    client: grpcclient.InferenceServerClient,
) -> None:
    def call(i: int) -> str:
        columns = impressions(1, user_age=np.array([[np.nan if i == 7 else 30.0]], np.float32))
        try:
            client.infer("ctr", [_tensor(k, v) for k, v in columns.items()])
            return "ok"
        except InferenceServerException as exc:
            return exc.message()

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(call, range(64)))
    assert outcomes[7].endswith("input 'user_age' row 0: nan is not a finite number")
    assert all(o == "ok" for i, o in enumerate(outcomes) if i != 7)


def test_unknown_model_is_not_found(client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as err:
        client.infer("no_such_model", [_tensor("IMAGES", np.zeros((1, 8, 8), np.uint8))])
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_dynamic_batching_forms_batches(triton_server: TritonServer) -> None:
    """256 single-row requests sent at once run as a few batched executions (not 255)."""
    import asyncio

    import tritonclient.grpc.aio as aioclient

    async def burst() -> tuple[int, int, dict[int, int]]:
        async with aioclient.InferenceServerClient(triton_server.grpc_url) as aclient:
            before = (await aclient.get_inference_statistics("ctr_xgb")).model_stats[0]
            await asyncio.gather(
                *(
                    aclient.infer("ctr_xgb", [_tensor("input__0", np.zeros((1, 46), np.float32))])
                    for _ in range(256)
                )
            )
            after = (await aclient.get_inference_statistics("ctr_xgb")).model_stats[0]
        sizes = {s.batch_size: s.compute_infer.count for s in after.batch_stats}
        for s in before.batch_stats:
            sizes[s.batch_size] -= s.compute_infer.count
        return (
            after.inference_count - before.inference_count,
            after.execution_count - before.execution_count,
            {size: n for size, n in sizes.items() if n},
        )

    requests, executions, sizes = asyncio.run(burst())
    assert requests == 256
    assert sum(size * n for size, n in sizes.items()) == 256  # every row ran in some batch
    assert sum(sizes.values()) == executions
    # batches of several requests carried most of the rows (one request per execution would
    # give 256 executions of size 1)
    assert executions <= 256 // 4, sizes
    assert max(sizes) >= 8, sizes


def test_served_outputs_are_deterministic_whatever_the_batch(
    client: grpcclient.InferenceServerClient, model_repository: Path
) -> None:
    """Every served model gives bit-identical outputs for the same rows, alone or inside a
    bigger batch, call after call (golden inputs of each model, as the build kept them)."""
    from triton_deploy.build.golden import load_golden_cases

    cases = load_golden_cases(model_repository)
    served = [name for name in cases if client.is_model_ready(name)]
    assert {"digits", "digits_cnn", "ctr", "ctr_xgb"} <= set(served)
    for name in served:
        inputs = {k: v[:8] for k, v in cases[name].inputs.items()}
        outputs = list(cases[name].expected)

        def run(
            rows: dict[str, np.ndarray], model: str = name, names: list[str] = outputs
        ) -> dict[str, np.ndarray]:
            result = client.infer(model, [_tensor(k, v) for k, v in rows.items()])
            return {o: result.as_numpy(o) for o in names}

        whole = run(inputs)
        again = run(inputs)
        alone = [run({k: v[i : i + 1] for k, v in inputs.items()}) for i in (0, 5)]
        for output in outputs:
            np.testing.assert_array_equal(whole[output], again[output], err_msg=name)
            np.testing.assert_array_equal(whole[output][[0]], alone[0][output], err_msg=name)
            np.testing.assert_array_equal(whole[output][[5]], alone[1][output], err_msg=name)
