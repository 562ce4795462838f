import pytest
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build.ensembles import validate_ensemble
from triton_deploy.build.spec import EnsembleSpec
from triton_deploy.errors import EnsembleWiringError


def _member(name: str, inputs, outputs, max_batch_size: int = 64) -> mc.ModelConfig:  # type: ignore[no-untyped-def]
    def tensors(items, cls):  # type: ignore[no-untyped-def]
        return [cls(name=n, data_type=mc.DataType.Value(f"TYPE_{t}"), dims=d) for n, t, d in items]

    return mc.ModelConfig(
        name=name,
        max_batch_size=max_batch_size,
        input=tensors(inputs, mc.ModelInput),
        output=tensors(outputs, mc.ModelOutput),
    )


MEMBERS = {
    "pre": _member("pre", [("RAW", "UINT8", [8, 8])], [("x", "FP32", [1, 8, 8])]),
    "net": _member("net", [("x", "FP32", [1, 8, 8])], [("logits", "FP32", [10])]),
    "post": _member(
        "post", [("logits", "FP32", [10])], [("LABELS", "INT64", [3])], max_batch_size=32
    ),
}


def _ensemble(**changes) -> EnsembleSpec:  # type: ignore[no-untyped-def]
    data = {
        "name": "chain",
        "max_batch_size": 32,
        "inputs": [{"name": "IMAGES", "dtype": "UINT8", "dims": [8, 8]}],
        "outputs": [{"name": "LABELS", "dtype": "INT64", "dims": [3]}],
        "steps": [
            {"model": "pre", "inputs": {"RAW": "IMAGES"}, "outputs": {"x": "pixels"}},
            {"model": "net", "inputs": {"x": "pixels"}, "outputs": {"logits": "logits"}},
            {"model": "post", "inputs": {"logits": "logits"}, "outputs": {"LABELS": "LABELS"}},
        ],
    }
    for key, value in changes.items():
        if key.startswith("step"):
            data["steps"][int(key[4:])].update(value)
        else:
            data[key] = value
    return EnsembleSpec.model_validate(data)


def test_good_wiring_passes() -> None:
    validate_ensemble(_ensemble(), MEMBERS)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"step1": {"inputs": {"x": "pixelz"}}}, "tensor 'pixelz' has no producer"),
        ({"step1": {"outputs": {"logits": "pixels"}}}, "tensor 'pixels' has two producers"),
        (
            {"step1": {"inputs": {"y": "pixels"}}},
            "input_map names 'y', which is not an input of 'net'",
        ),
        (
            {"step2": {"outputs": {"PROBS": "LABELS"}}},
            "output_map names 'PROBS', which is not an output of 'post'",
        ),
        (
            {"inputs": [{"name": "IMAGES", "dtype": "FP32", "dims": [8, 8]}]},
            "tensor 'IMAGES': the ensemble's inputs makes FP32, ensemble 'chain' step 1 ('pre') expects UINT8",
        ),
        (
            {"inputs": [{"name": "IMAGES", "dtype": "UINT8", "dims": [28, 28]}]},
            "tensor 'IMAGES': the ensemble's inputs makes dims [28, 28]",
        ),
        ({"max_batch_size": 64}, "max_batch_size 64 exceeds that of member 'post' (32)"),
        (
            {"outputs": [{"name": "PROBS", "dtype": "FP32", "dims": [3]}]},
            "output tensor 'PROBS' has no producer",
        ),
        ({"step0": {"model": "missing"}}, "model 'missing' is not in the repository"),
    ],
)
def test_miswired_ensemble_names_the_tensor(changes, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EnsembleWiringError) as err:
        validate_ensemble(_ensemble(**changes), MEMBERS)
    assert message in str(err.value)


def test_unfed_member_input() -> None:
    members = dict(MEMBERS)
    members["net"] = _member(
        "net", [("x", "FP32", [1, 8, 8]), ("mask", "FP32", [8])], [("logits", "FP32", [10])]
    )
    with pytest.raises(EnsembleWiringError, match=r"input\(s\) \['mask'\] of 'net' are not fed"):
        validate_ensemble(_ensemble(), members)


def test_cycle_is_reported() -> None:
    members = {
        "a": _member("a", [("i", "FP32", [1])], [("o", "FP32", [1])]),
        "b": _member("b", [("i", "FP32", [1]), ("j", "FP32", [1])], [("o", "FP32", [1])]),
    }
    spec = EnsembleSpec.model_validate(
        {
            "name": "loop",
            "max_batch_size": 8,
            "inputs": [{"name": "IN", "dtype": "FP32", "dims": [1]}],
            "outputs": [{"name": "OUT", "dtype": "FP32", "dims": [1]}],
            "steps": [
                {"model": "a", "inputs": {"i": "t2"}, "outputs": {"o": "t1"}},
                {"model": "b", "inputs": {"i": "t1", "j": "IN"}, "outputs": {"o": "t2"}},
                {"model": "a", "inputs": {"i": "IN"}, "outputs": {"o": "OUT"}},
            ],
        }
    )
    with pytest.raises(EnsembleWiringError, match="form a cycle"):
        validate_ensemble(spec, members)
