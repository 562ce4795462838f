import numpy as np

from triton_deploy.build.pipeline import parity


def test_parity_within_and_beyond_tolerance() -> None:
    reference = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    assert parity(reference + 1e-6, reference, atol=1e-5, rtol=0)["passed"]
    off = parity(reference + np.float32(3e-4), reference, atol=1e-4, rtol=0)
    assert not off["passed"] and abs(off["max_abs_diff"] - 3e-4) < 1e-6
    # rtol scales with the reference magnitude
    assert parity(reference * 1.001, reference, atol=0, rtol=2e-3)["passed"]
    shape = parity(reference[:, :1], reference, atol=1, rtol=1)
    assert not shape["passed"] and "shape [2, 1] != [2, 2]" in shape["problem"]


def test_integers_and_strings_are_compared_exactly() -> None:
    labels = np.array([[3, 1], [0, 2]], np.int64)
    assert parity(labels.copy(), labels, atol=10, rtol=10)["passed"]
    swapped = parity(labels[:, ::-1].copy(), labels, atol=10, rtol=10)
    assert not swapped["passed"] and swapped["problem"] == "4 values differ"
    words = np.array([b"a", b"b"], dtype=object)
    assert not parity(np.array([b"a", b"c"], dtype=object), words, atol=1, rtol=1)["passed"]


def test_nan_matches_only_nan() -> None:
    reference = np.array([np.nan, 1.0], np.float32)
    assert parity(reference.copy(), reference, atol=0, rtol=0)["passed"]
    check = parity(np.array([0.0, 1.0], np.float32), reference, atol=1, rtol=1)
    assert not check["passed"] and check["max_abs_diff"] == float("inf")
