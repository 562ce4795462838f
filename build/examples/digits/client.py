"""A typed client for the ``digits`` ensemble: images in, ``Prediction`` objects out.

    from triton_deploy.build.examples.digits.client import DigitsClient
    from triton_deploy.clients import InferenceClient

    with InferenceClient("localhost:8001") as client:
        predictions = DigitsClient(client).classify(images)   # uint8 [N, 8, 8] or one [8, 8]
        predictions[0].label, predictions[0].probability, predictions[0].top_labels

What a service team would write for its own model on top of ``triton_deploy.clients``: it
uses the public client only (``infer_many`` splits any number of images into batches).
Importing it loads numpy and the client, never torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from triton_deploy.clients import AsyncInferenceClient, InferenceClient, InvalidInput
from triton_deploy.clients._types import Array, Headers, OutputMap

__all__ = ["AsyncDigitsClient", "DigitsClient", "Prediction"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One image's classification: the best class first, then the model's top-k."""

    label: int
    probability: float
    top_labels: tuple[int, ...]
    top_probabilities: tuple[float, ...]


class _DigitsBase:
    def __init__(
        self,
        *,
        model: str = "digits",
        input_name: str = "IMAGES",
        labels_output: str = "LABELS",
        probs_output: str = "PROBS",
    ) -> None:
        self.model = model
        self.input_name = input_name
        self.labels_output = labels_output
        self.probs_output = probs_output

    def _images(self, images: npt.ArrayLike) -> Array | None:
        """uint8 ``[N, 8, 8]``, or ``None`` for no images at all."""
        array = np.asarray(images)
        if array.size == 0:
            return None
        if array.ndim == 2:  # one image
            array = array[None]
        if array.dtype == np.uint8:
            return array
        if array.dtype.kind in "iu" and array.min() >= 0 and array.max() <= 255:
            return array.astype(np.uint8)
        raise InvalidInput(
            f"images for model '{self.model}' must be uint8 pixel intensities 0..255, got "
            f"dtype {array.dtype}; convert with np.clip(images, 0, 255).astype(np.uint8)",
            tensor=self.input_name,
            model=self.model,
        )

    def _predictions(self, out: OutputMap) -> list[Prediction]:
        labels = np.asarray(out[self.labels_output]).reshape(len(out[self.labels_output]), -1)
        probs = np.asarray(out[self.probs_output]).reshape(len(out[self.probs_output]), -1)
        return [
            Prediction(
                label=int(row_labels[0]),
                probability=float(row_probs[0]),
                top_labels=tuple(int(x) for x in row_labels),
                top_probabilities=tuple(float(x) for x in row_probs),
            )
            for row_labels, row_probs in zip(labels, probs, strict=True)
        ]


class DigitsClient(_DigitsBase):
    """Classify 8x8 digit images with the ``digits`` ensemble (see the module docstring).

    Input and output names default to the example ensemble's (IMAGES -> LABELS, PROBS).
    No images (an empty list or array) give an empty list, without a call.
    """

    def __init__(self, client: InferenceClient, **names: str) -> None:
        super().__init__(**names)
        self.client = client

    def classify(
        self,
        images: npt.ArrayLike,
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
        max_concurrency: int | None = None,
    ) -> list[Prediction]:
        """One ``Prediction`` per image, in order (any number of images)."""
        array = self._images(images)
        if array is None:
            return []
        out = self.client.infer_many(
            self.model,
            {self.input_name: array},
            outputs=[self.labels_output, self.probs_output],
            timeout=timeout,
            headers=headers,
            max_concurrency=max_concurrency,
        )
        return self._predictions(out)


class AsyncDigitsClient(_DigitsBase):
    """The asyncio twin of ``DigitsClient``: ``await digits.classify(images)``."""

    def __init__(self, client: AsyncInferenceClient, **names: str) -> None:
        super().__init__(**names)
        self.client = client

    async def classify(
        self,
        images: npt.ArrayLike,
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
        max_concurrency: int | None = None,
    ) -> list[Prediction]:
        """See ``DigitsClient.classify``."""
        array = self._images(images)
        if array is None:
            return []
        out = await self.client.infer_many(
            self.model,
            {self.input_name: array},
            outputs=[self.labels_output, self.probs_output],
            timeout=timeout,
            headers=headers,
            max_concurrency=max_concurrency,
        )
        return self._predictions(out)
