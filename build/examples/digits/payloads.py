"""Load-test payloads for the digits example: the held-out images, and the workload that sends
them (named in the task mix as ``triton_deploy.build.examples.digits.payloads:DigitsWorkload``).

- ``digits_images(seed)``: the held-out split of scikit-learn's bundled digits, scaled to uint8
  exactly as the recipe's ``load_splits(seed)`` does (same stratified shuffle), without
  importing torch (the recipe module does).
- ``DigitsWorkload``: a service classifying handwritten digits: mostly one image per request,
  sometimes a scanned form of several, now and then the CNN alone (preprocessed here).

Pools are built once per process and shared by every simulated user (read-only).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from triton_deploy.loadtests.config import LoadTestConfigError
from triton_deploy.loadtests.workload import Workload, WorkloadOptions, check_range

__all__ = ["DigitsOptions", "DigitsWorkload", "digits_images"]


@functools.cache
def digits_images(seed: int = 0, test_fraction: float = 0.2) -> npt.NDArray[np.uint8]:
    """Held-out digit images, uint8 [N, 8, 8] (N = 360 for the default split)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise LoadTestConfigError(
            "the digits payloads need scikit-learn (pip install scikit-learn): its bundled "
            "digits data set is the held-out images"
        ) from None
    data = load_digits()
    images = np.round(data.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    _, test_images = train_test_split(
        images, test_size=test_fraction, random_state=seed, stratify=data.target
    )
    test_images.setflags(write=False)
    return test_images


class DigitsOptions(WorkloadOptions):
    #: Images per request of ``image_batch`` (uniform between the two).
    batch_size: tuple[Annotated[int, Field(ge=1, le=64)], Annotated[int, Field(ge=1, le=64)]] = (
        2,
        16,
    )

    @model_validator(mode="after")
    def _valid(self) -> DigitsOptions:
        check_range(self.batch_size, "batch_size")
        return self


class DigitsWorkload(Workload):
    """Calls ``digits`` (uint8 images in, top-3 labels and probabilities out) and
    ``digits_cnn`` (normalised float images in, logits out)."""

    TASKS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "one_image": ("digits",),  # one image per request (an app classifying a photo)
        "image_batch": ("digits",),  # a scanned form: batch_size images in one request
        "cnn_direct": ("digits_cnn",),  # the CNN alone, preprocessed on the client
    }
    DEFAULT_WEIGHTS: ClassVar[Mapping[str, int]] = {
        "one_image": 6,
        "image_batch": 3,
        "cnn_direct": 1,
    }
    Options: ClassVar[type[WorkloadOptions]] = DigitsOptions

    @classmethod
    def prepare(cls, options: WorkloadOptions, seed: int) -> None:
        digits_images(seed)

    def _sample(self, size: int) -> Any:
        images = digits_images(self.seed)
        return images[self.rng.sample(range(len(images)), size)]

    @property
    def _batch_size(self) -> tuple[int, int]:
        assert isinstance(self.options, DigitsOptions)
        return self.options.batch_size

    def one_image(self) -> None:
        self.call("digits", self.client.infer, "digits", IMAGES=self._sample(1))

    def image_batch(self) -> None:
        size = self.rng.randint(*self._batch_size)
        self.call("digits", self.client.infer, "digits", IMAGES=self._sample(size))

    def cnn_direct(self) -> None:
        from triton_deploy.build.examples.digits.digits_features import preprocess

        size = self.rng.randint(1, self._batch_size[1])
        pixels = preprocess(self._sample(size))
        self.call("digits_cnn", self.client.infer, "digits_cnn", images=pixels)
