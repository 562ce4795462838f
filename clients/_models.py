"""Clients for the example ensembles: ``digits`` (image classifier) and ``ctr`` (click-through).

Each wraps an ``InferenceClient`` (or its async twin) and speaks the model's own terms:
images in, ``Prediction`` objects out; impression records in, click probabilities out.
Batches of any size are split with ``infer_many``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._async_client import AsyncInferenceClient
from ._client import InferenceClient
from ._errors import InvalidInput, UsageError
from ._schema import ModelSchema
from ._types import Array, Headers, OutputMap, Record
from ._validation import arrays_from_records

__all__ = ["AsyncCtrClient", "AsyncDigitsClient", "CtrClient", "DigitsClient", "Prediction"]


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

    def _images(self, images: npt.ArrayLike) -> Array:
        array = np.asarray(images)
        if array.ndim == 2:  # one image
            array = array[None]
        if array.dtype == np.uint8:
            return array
        if array.dtype.kind in "iu" and (
            array.size == 0 or (array.min() >= 0 and array.max() <= 255)
        ):
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
    """Classify 8x8 digit images with the ``digits`` ensemble.

        with InferenceClient("localhost:8001") as client:
            digits = DigitsClient(client)
            predictions = digits.classify(images)      # uint8 [N, 8, 8] (or one [8, 8])
            predictions[0].label, predictions[0].probability, predictions[0].top_labels

    Input and output names default to the example ensemble's (IMAGES -> LABELS, PROBS).
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
        if len(array) == 0:
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
        if len(array) == 0:
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


class _CtrBase:
    def __init__(self, *, model: str = "ctr", output: str = "CLICK_PROB") -> None:
        self.model = model
        self.output = output

    @staticmethod
    def _check(impressions: Sequence[Record]) -> list[Record]:
        if isinstance(impressions, Mapping):
            raise UsageError("predict() takes a list of impressions: predict([impression])")
        return list(impressions)

    def _arrays(self, schema: ModelSchema, impressions: Sequence[Record]) -> dict[str, Any]:
        return arrays_from_records(schema, impressions)

    def _result(self, out: OutputMap) -> Array:
        return np.asarray(out[self.output], dtype=np.float32).reshape(-1)


class CtrClient(_CtrBase):
    """Click probabilities from the ``ctr`` ensemble.

        with InferenceClient("localhost:8001") as client:
            ctr = CtrClient(client)
            p = ctr.predict([
                {"hour_of_day": 13, "ad_position": 1, "user_age": 34, "bid_floor": 0.2,
                 "device_type": "mobile", "site_category": "news",
                 "ad_category": "travel", "country": "DE"},
            ])                                           # float32 [1]

    The per-input arrays are built from the model's metadata: a BYTES input takes a string
    field, an FP32 input a number; extra fields are ignored; a missing field raises
    ``InvalidInput`` naming it and the record. Unseen categories are fine (the model maps them
    to "unknown"); empty strings are rejected by the server (``InvalidInput``).
    """

    def __init__(self, client: InferenceClient, *, model: str = "ctr", output: str = "CLICK_PROB"):
        super().__init__(model=model, output=output)
        self.client = client

    def predict(
        self,
        impressions: Sequence[Record],
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
        max_concurrency: int | None = None,
    ) -> Array:
        """One click probability per impression, in order (float32 ``[N]``)."""
        records = self._check(impressions)
        if not records:
            return np.empty(0, dtype=np.float32)
        schema = self.client.model_schema(self.model, timeout=timeout, headers=headers)
        out = self.client.infer_many(
            self.model,
            self._arrays(schema, records),
            outputs=[self.output],
            timeout=timeout,
            headers=headers,
            max_concurrency=max_concurrency,
        )
        return self._result(out)


class AsyncCtrClient(_CtrBase):
    """The asyncio twin of ``CtrClient``: ``await ctr.predict(impressions)``."""

    def __init__(
        self, client: AsyncInferenceClient, *, model: str = "ctr", output: str = "CLICK_PROB"
    ):
        super().__init__(model=model, output=output)
        self.client = client

    async def predict(
        self,
        impressions: Sequence[Record],
        *,
        timeout: float | None = None,
        headers: Headers | None = None,
        max_concurrency: int | None = None,
    ) -> Array:
        """See ``CtrClient.predict``."""
        records = self._check(impressions)
        if not records:
            return np.empty(0, dtype=np.float32)
        schema = await self.client.model_schema(self.model, timeout=timeout, headers=headers)
        out = await self.client.infer_many(
            self.model,
            self._arrays(schema, records),
            outputs=[self.output],
            timeout=timeout,
            headers=headers,
            max_concurrency=max_concurrency,
        )
        return self._result(out)
