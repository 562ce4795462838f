"""Digits pre- and post-processing: the one copy used by the trainer and by the served models.

Numpy only. ``tdeploy build`` copies this file into the ``digits_preprocess`` and
``digits_postprocess`` Python models, so training and serving share the very same code.
"""

from __future__ import annotations

import numpy as np

IMAGE_SHAPE = (8, 8)
# Pixel statistics of the scikit-learn digits images scaled to [0, 1] (mean 0.305, std 0.375).
PIXEL_MEAN = 0.305
PIXEL_STD = 0.375


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images [N, 8, 8] (0..255) -> normalised float32 [N, 1, 8, 8]."""
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must have shape [N, 8, 8], got {list(images.shape)}")
    scaled = images.astype(np.float32) / np.float32(255.0)
    normalised = (scaled - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_STD)
    return normalised[:, None, :, :].astype(np.float32)


def postprocess(logits: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """logits [N, C] -> (labels int64 [N, k], probabilities float32 [N, k]), best first."""
    logits = logits.astype(np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    return order.astype(np.int64), np.take_along_axis(probs, order, axis=1).astype(np.float32)
