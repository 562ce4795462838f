"""Client-side checks against a model's schema (no server: schemas written by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from triton_deploy.clients import InvalidInput, ModelSchema, TensorSpec, arrays_from_records
from triton_deploy.clients._validation import prepare_inputs, raw_inputs

DIGITS = ModelSchema(
    name="digits",
    versions=("1",),
    platform="ensemble",
    max_batch_size=64,
    inputs=(TensorSpec("IMAGES", "UINT8", (-1, 8, 8)),),
    outputs=(TensorSpec("LABELS", "INT64", (-1, 3)), TensorSpec("PROBS", "FP32", (-1, 3))),
)
CTR_FEATURES = {
    "hour_of_day": "FP32",
    "ad_position": "FP32",
    "user_age": "FP32",
    "bid_floor": "FP32",
    "device_type": "BYTES",
    "site_category": "BYTES",
    "ad_category": "BYTES",
    "country": "BYTES",
}
CTR = ModelSchema(
    name="ctr",
    versions=("1",),
    platform="ensemble",
    max_batch_size=256,
    inputs=tuple(TensorSpec(n, t, (-1, 1)) for n, t in CTR_FEATURES.items()),
    outputs=(TensorSpec("CLICK_PROB", "FP32", (-1, 1)),),
)
UNBATCHED = ModelSchema(
    name="plain",
    versions=("1",),
    platform="onnxruntime_onnx",
    max_batch_size=0,
    inputs=(TensorSpec("x", "FP32", (4, -1)), TensorSpec("mask", "BOOL", (4,), optional=True)),
    outputs=(TensorSpec("y", "FP32", (4,)),),
)


def impression(**overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "hour_of_day": 13,
        "ad_position": 1,
        "user_age": 34.5,
        "bid_floor": 0.2,
        "device_type": "mobile",
        "site_category": "news",
        "ad_category": "travel",
        "country": "DE",
    }
    record.update(overrides)
    return record


def test_valid_images_pass_unchanged() -> None:
    images = np.zeros((5, 8, 8), dtype=np.uint8)
    prepared, batch = prepare_inputs(DIGITS, {"IMAGES": images})
    assert batch == 5
    [(spec, array)] = prepared
    assert spec.name == "IMAGES" and array is images


def test_wrong_dtype_names_tensor_and_both_dtypes() -> None:
    with pytest.raises(InvalidInput) as info:
        prepare_inputs(DIGITS, {"IMAGES": np.zeros((2, 8, 8), dtype=np.float32)})
    message = str(info.value)
    assert info.value.tensor == "IMAGES" and info.value.status is None
    assert "IMAGES" in message and "UINT8" in message and "float32" in message


def test_wrong_shape_names_expected_and_given() -> None:
    with pytest.raises(InvalidInput) as info:
        prepare_inputs(DIGITS, {"IMAGES": np.zeros((2, 3), dtype=np.uint8)})
    message = str(info.value)
    assert "[N, 8, 8]" in message and "[2, 3]" in message and "N ≤ 64" in message


def test_single_sample_gets_a_hint() -> None:
    with pytest.raises(InvalidInput, match=r"array\[None\]"):
        prepare_inputs(DIGITS, {"IMAGES": np.zeros((8, 8), dtype=np.uint8)})


def test_unknown_and_missing_names() -> None:
    with pytest.raises(InvalidInput, match="has no input 'images'") as info:
        prepare_inputs(DIGITS, {"images": np.zeros((1, 8, 8), dtype=np.uint8)})
    assert "IMAGES UINT8 [N, 8, 8]" in str(info.value)
    with pytest.raises(InvalidInput, match="missing input 'IMAGES'"):
        prepare_inputs(DIGITS, {})


def test_batch_over_max_batch_size_points_to_infer_many() -> None:
    images = np.zeros((65, 8, 8), dtype=np.uint8)
    with pytest.raises(InvalidInput, match=r"batch of 65 exceeds max_batch_size 64.*infer_many"):
        prepare_inputs(DIGITS, {"IMAGES": images})
    _, batch = prepare_inputs(DIGITS, {"IMAGES": images}, limit_batch=False)
    assert batch == 65


def test_empty_batch_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="empty batch"):
        prepare_inputs(DIGITS, {"IMAGES": np.zeros((0, 8, 8), dtype=np.uint8)})


def test_batch_sizes_must_agree() -> None:
    arrays = arrays_from_records(CTR, [impression(), impression()])
    arrays["country"] = arrays["country"][:1]
    with pytest.raises(InvalidInput, match="disagree on the batch size"):
        prepare_inputs(CTR, arrays)


def test_lists_convert_only_when_lossless() -> None:
    prepared, _ = prepare_inputs(DIGITS, {"IMAGES": [[[1] * 8] * 8]})
    assert prepared[0][1].dtype == np.uint8
    with pytest.raises(InvalidInput, match="do not convert to uint8 exactly"):
        prepare_inputs(DIGITS, {"IMAGES": [[[300] * 8] * 8]})
    with pytest.raises(InvalidInput):
        prepare_inputs(DIGITS, {"IMAGES": [[[0.5] * 8] * 8]})
    # floats round into FP32 without complaint
    prepared, _ = prepare_inputs(
        CTR, {**arrays_from_records(CTR, [impression()]), "bid_floor": [[0.1]]}
    )
    assert dict((s.name, a) for s, a in prepared)["bid_floor"].dtype == np.float32


def test_bytes_inputs_take_strings_and_bytes_only() -> None:
    arrays = arrays_from_records(CTR, [impression()])
    arrays["country"] = np.array([["DE"]])  # a '<U2' array becomes an object array
    prepared, _ = prepare_inputs(CTR, arrays)
    assert dict((s.name, a) for s, a in prepared)["country"].dtype == object
    arrays["country"] = np.array([[7]], dtype=object)
    with pytest.raises(InvalidInput, match=r"'country'.*int"):
        prepare_inputs(CTR, arrays)
    arrays["country"] = np.array([[7.0]])
    with pytest.raises(InvalidInput, match=r"'country'.*float64"):
        prepare_inputs(CTR, arrays)


def test_unbatched_model_with_optional_input_and_variable_dim() -> None:
    x = np.zeros((4, 7), dtype=np.float32)
    prepared, batch = prepare_inputs(UNBATCHED, {"x": x})
    assert batch == 0 and len(prepared) == 1
    with pytest.raises(InvalidInput, match=r"expected shape \[4, -1\], got \[3, 7\]"):
        prepare_inputs(UNBATCHED, {"x": np.zeros((3, 7), dtype=np.float32)})


def test_records_become_per_input_arrays() -> None:
    arrays = arrays_from_records(CTR, [impression(), impression(country="FR", clicked=1)])
    assert set(arrays) == set(CTR_FEATURES)
    assert arrays["hour_of_day"].dtype == np.float32 and arrays["hour_of_day"].shape == (2, 1)
    assert arrays["country"].dtype == object and arrays["country"][:, 0].tolist() == ["DE", "FR"]
    prepared, batch = prepare_inputs(CTR, arrays)
    assert batch == 2 and len(prepared) == 8


def test_missing_field_is_named_with_its_record() -> None:
    broken = impression()
    del broken["country"]
    with pytest.raises(InvalidInput, match="record 1 has no field 'country'") as info:
        arrays_from_records(CTR, [impression(), broken])
    assert info.value.tensor == "country"


def test_field_types_are_checked() -> None:
    with pytest.raises(InvalidInput, match="'user_age' of record 0 must be a number"):
        arrays_from_records(CTR, [impression(user_age="old")])
    with pytest.raises(InvalidInput, match="'country' of record 0 must be a string"):
        arrays_from_records(CTR, [impression(country=49)])


def test_raw_inputs_type_from_numpy() -> None:
    raw = raw_inputs({"a": np.zeros((1, 2), dtype=np.float64), "b": np.array([["x"]])})
    assert [(name, datatype) for name, datatype, _ in raw] == [("a", "FP64"), ("b", "BYTES")]
