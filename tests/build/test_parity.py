import numpy as np

from triton_deploy.build.pipeline import _checked, parity
from triton_deploy.build.spec import ModelSpec


def test_parity_within_and_beyond_tolerance() -> None:
    reference = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    assert parity(reference + 1e-6, reference, atol=1e-5, rtol=0)["passed"]
    off = parity(reference + np.float32(3e-4), reference, atol=1e-4, rtol=0)
    assert not off["passed"] and abs(off["max_abs_diff"] - 3e-4) < 1e-6
    # rtol scales with the reference magnitude
    assert parity(reference * 1.001, reference, atol=0, rtol=2e-3)["passed"]
    shape = parity(reference[:, :1], reference, atol=1, rtol=1)
    assert not shape["passed"] and "shape [2, 1] != [2, 2]" in shape["problem"]


def test_a_conversion_beyond_tolerance_fails_the_build_step() -> None:
    model = ModelSpec(
        name="m", backend="onnxruntime", recipe="digits:train", tolerance={"atol": 1e-5, "rtol": 0}
    )
    reference = np.zeros((4, 10), np.float32)
    ok = _checked(model, "torch2onnx", reference, reference, {"acc": 1.0}, "differs")
    assert ok.status == "OK" and ok.detail == "" and ok.metrics == {"acc": 1.0}
    bad = _checked(model, "torch2onnx", reference + 1e-3, reference, {}, "ONNX output differs")
    assert bad.status == "FAIL" and bad.detail == "ONNX output differs" and not bad.parity["passed"]  # type: ignore[index]
