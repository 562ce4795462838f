"""Simulated clients of the example ensembles, with realistic payloads.

- ``DigitsUser``: a service classifying handwritten digits: mostly one image per request,
  sometimes a scanned form of several, now and then the CNN alone (preprocessed here).
- ``CtrUser``: an ad server scoring the candidate ads of each page view, and now and then an
  offline job re-scoring a block of logged impressions.

The ``@task`` weights below are the defaults; the environment's task mix
(``loadtests/mix/<env>.yaml``, applied by ``plugin``) replaces them, the user class weights
and the payload sizes. Task method names are the mix's task keys.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, ClassVar

from locust import between, task
from locust.env import Environment

from triton_deploy.build.examples.digits.digits_features import preprocess
from triton_deploy.clients import CtrClient

from .grpc_user import TritonGrpcUser
from .payloads import digits_images, impression_pool, page_view
from .taskmix import CtrMix, DigitsMix

__all__ = ["CtrUser", "DigitsUser"]

_user_numbers = itertools.count()


class DigitsUser(TritonGrpcUser):
    """Calls ``digits`` (uint8 images in, top-3 labels and probabilities out) and
    ``digits_cnn`` (normalised float images in, logits out)."""

    weight = 1
    wait_time = between(0.0, 0.05)
    mix: ClassVar[DigitsMix] = DigitsMix()
    seed: ClassVar[int] = 0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = random.Random(self.seed * 1_000_003 + next(_user_numbers))
        self.images = digits_images(self.seed)

    def _sample(self, size: int) -> Any:
        rows = self.rng.sample(range(len(self.images)), size)
        return self.images[rows]

    @task(6)
    def one_image(self) -> None:
        self.call("digits", self.client.infer, "digits", IMAGES=self._sample(1))

    @task(3)
    def image_batch(self) -> None:
        size = self.rng.randint(*self.mix.batch_size)
        self.call("digits", self.client.infer, "digits", IMAGES=self._sample(size))

    @task(1)
    def cnn_direct(self) -> None:
        size = self.rng.randint(1, self.mix.batch_size[1])
        pixels = preprocess(self._sample(size))
        self.call("digits_cnn", self.client.infer, "digits_cnn", images=pixels)


class CtrUser(TritonGrpcUser):
    """Calls ``ctr`` with impression records through ``CtrClient`` (arrays built from the
    model's metadata, as a service would)."""

    weight = 1
    wait_time = between(0.0, 0.05)
    mix: ClassVar[CtrMix] = CtrMix()
    seed: ClassVar[int] = 0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = random.Random(self.seed * 1_000_003 + next(_user_numbers))
        self.pool = impression_pool(seed=self.seed, tail_share=self.mix.tail_share)
        self.ctr = CtrClient(self.client)

    @task(9)
    def ad_request(self) -> None:
        ads = self.rng.randint(*self.mix.ads_per_request)
        self.call("ctr", self.ctr.predict, page_view(self.pool, self.rng, ads))

    @task(1)
    def bulk_rescore(self) -> None:
        start = self.rng.randrange(len(self.pool) - self.mix.bulk_size + 1)
        self.call("ctr", self.ctr.predict, list(self.pool[start : start + self.mix.bulk_size]))
