"""A typed client for the ``ctr`` ensemble: impression records in, click probabilities out.

    from triton_deploy.build.examples.ctr.client import CtrClient
    from triton_deploy.clients import InferenceClient

    with InferenceClient("localhost:8001") as client:
        p = CtrClient(client).predict([
            {"hour_of_day": 13, "ad_position": 1, "user_age": 34, "bid_floor": 0.2,
             "device_type": "mobile", "site_category": "news",
             "ad_category": "travel", "country": "DE"},
        ])                                           # float32 [1]

What a service team would write for its own model on top of ``triton_deploy.clients``: the
per-input arrays come from the model's metadata (``arrays_from_records``), batches of any
size go through ``infer_many``. Importing it loads numpy and the client, never xgboost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from triton_deploy.clients import (
    AsyncInferenceClient,
    InferenceClient,
    ModelSchema,
    UsageError,
    arrays_from_records,
)
from triton_deploy.clients._types import Array, Headers, OutputMap, Record

__all__ = ["AsyncCtrClient", "CtrClient"]


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
    """Click probabilities from the ``ctr`` ensemble (see the module docstring).

    A BYTES input takes a string field, an FP32 input a number; extra fields are ignored; a
    missing field raises ``InvalidInput`` naming it and the record. Unseen categories are fine
    (the model maps them to an "other" slot); empty strings are rejected by the server
    (``InvalidInput``, naming the row of the whole list). No impressions give an empty array,
    without a call.
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
