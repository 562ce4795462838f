"""Load-test payloads for the ctr example: synthetic ad impressions, and the workload that sends
them (named in the task mix as ``triton_deploy.build.examples.ctr.payloads:CtrWorkload``).

- ``impression_pool(n, seed, tail_share)``: impressions from the ctr recipe's generator, with
  ``tail_share`` of the categorical values rare or never seen in training (numpy only).
- ``page_view(pool, rng, ads)``: one page view's candidate ads: one user, one site, ``ads``
  different ads in positions 1..ads.
- ``CtrWorkload``: an ad server scoring the candidate ads of each page view through
  ``CtrClient`` (arrays built from the model's metadata, as a service would), and now and
  then an offline job re-scoring a block of logged impressions.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from triton_deploy.build.examples.ctr.client import CtrClient
from triton_deploy.loadtests.workload import Workload, WorkloadOptions, check_range

__all__ = ["CtrOptions", "CtrWorkload", "impression_pool", "page_view"]

# The fields a page view shares across its candidate ads.
_USER_FIELDS = ("hour_of_day", "user_age", "device_type", "site_category", "country")


@functools.cache
def impression_pool(n: int = 4096, seed: int = 0, tail_share: float = 0.03) -> tuple[Any, ...]:
    """``n`` impressions (dicts of the ctr ensemble's eight input fields)."""
    from triton_deploy.build.examples.ctr.ctr_data import generate_impressions

    return tuple(generate_impressions(n, seed=seed, tail_share=tail_share))


def page_view(pool: tuple[Any, ...], rng: random.Random, ads: int) -> list[dict[str, Any]]:
    """``ads`` candidate ads shown to one user on one page, in positions 1..ads."""
    user = pool[rng.randrange(len(pool))]
    start = rng.randrange(len(pool) - ads + 1)
    records = []
    for position, ad in enumerate(pool[start : start + ads], start=1):
        record = dict(ad)
        record.update({field: user[field] for field in _USER_FIELDS})
        record["ad_position"] = float(min(position, 8))
        records.append(record)
    return records


class CtrOptions(WorkloadOptions):
    #: Candidate ads per page view (uniform between the two).
    ads_per_request: tuple[
        Annotated[int, Field(ge=1, le=256)], Annotated[int, Field(ge=1, le=256)]
    ] = (1, 8)
    #: Impressions per bulk re-score: one request each, at most the ensemble's max_batch_size.
    bulk_size: Annotated[int, Field(ge=1, le=256)] = 256
    #: Share of categorical values that are rare or were never seen in training.
    tail_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.03

    @model_validator(mode="after")
    def _valid(self) -> CtrOptions:
        check_range(self.ads_per_request, "ads_per_request")
        return self


class CtrWorkload(Workload):
    """Calls ``ctr`` with impression records through ``CtrClient``."""

    TASKS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "ad_request": ("ctr",),  # the candidate ads of one page view
        "bulk_rescore": ("ctr",),  # an offline job re-scoring bulk_size logged impressions
    }
    DEFAULT_WEIGHTS: ClassVar[Mapping[str, int]] = {"ad_request": 9, "bulk_rescore": 1}
    Options: ClassVar[type[WorkloadOptions]] = CtrOptions

    @classmethod
    def prepare(cls, options: WorkloadOptions, seed: int) -> None:
        assert isinstance(options, CtrOptions)
        impression_pool(seed=seed, tail_share=options.tail_share)

    @property
    def _options(self) -> CtrOptions:
        assert isinstance(self.options, CtrOptions)
        return self.options

    @property
    def _pool(self) -> tuple[Any, ...]:
        return impression_pool(seed=self.seed, tail_share=self._options.tail_share)

    @functools.cached_property
    def _ctr(self) -> CtrClient:
        return CtrClient(self.client)

    def ad_request(self) -> None:
        ads = self.rng.randint(*self._options.ads_per_request)
        self.call("ctr", self._ctr.predict, page_view(self._pool, self.rng, ads))

    def bulk_rescore(self) -> None:
        size = self._options.bulk_size
        start = self.rng.randrange(len(self._pool) - size + 1)
        self.call("ctr", self._ctr.predict, list(self._pool[start : start + size]))
