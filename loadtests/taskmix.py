"""The task mix: what the simulated clients send, per environment (``loadtests/mix/<env>.yaml``).

    think_time_s: [0.0, 0.05]    # pause between one user's requests (uniform)
    digits:
      weight: 1                  # share of simulated users calling the digits models (0: none)
      tasks: {one_image: 6, image_batch: 3, cnn_direct: 1}
      batch_size: [2, 16]
    ctr:
      weight: 1
      tasks: {ad_request: 9, bulk_rescore: 1}
      ads_per_request: [1, 8]
      bulk_size: 256
      tail_share: 0.05           # share of rare / unseen categorical values

Task weights are relative frequencies within one user class (locust's ``@task(weight)``);
``weight`` is locust's user class weight. Pure pydantic: no locust import here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MODELS", "CtrMix", "CtrTasks", "DigitsMix", "DigitsTasks", "TaskMix"]

#: The models the load test calls, by the name they are reported under.
MODELS = ("digits", "digits_cnn", "ctr")

Weight = Annotated[int, Field(ge=0, le=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_range(pair: tuple[float, float], name: str) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(pair)}")


class DigitsTasks(_Strict):
    #: one image per request (an app classifying a photo): model ``digits``
    one_image: Weight = 6
    #: ``batch_size`` images per request (a scanned form): model ``digits``
    image_batch: Weight = 3
    #: the CNN alone, preprocessed on the client: model ``digits_cnn``
    cnn_direct: Weight = 1


class CtrTasks(_Strict):
    #: the candidate ads of one page view (``ads_per_request``): model ``ctr``
    ad_request: Weight = 9
    #: a block of ``bulk_size`` logged impressions re-scored at once: model ``ctr``
    bulk_rescore: Weight = 1


class DigitsMix(_Strict):
    weight: Weight = 1
    tasks: DigitsTasks = DigitsTasks()
    batch_size: tuple[Annotated[int, Field(ge=1, le=64)], Annotated[int, Field(ge=1, le=64)]] = (
        2,
        16,
    )

    @model_validator(mode="after")
    def _valid(self) -> DigitsMix:
        _check_range(self.batch_size, "batch_size")
        if self.weight and not any(self.tasks.model_dump().values()):
            raise ValueError("tasks: every weight is 0 but the user weight is not")
        return self


class CtrMix(_Strict):
    weight: Weight = 1
    tasks: CtrTasks = CtrTasks()
    ads_per_request: tuple[
        Annotated[int, Field(ge=1, le=256)], Annotated[int, Field(ge=1, le=256)]
    ] = (1, 8)
    #: One request each: at most the ensemble's max_batch_size (256).
    bulk_size: Annotated[int, Field(ge=1, le=256)] = 256
    tail_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.03

    @model_validator(mode="after")
    def _valid(self) -> CtrMix:
        _check_range(self.ads_per_request, "ads_per_request")
        if self.weight and not any(self.tasks.model_dump().values()):
            raise ValueError("tasks: every weight is 0 but the user weight is not")
        return self


class TaskMix(_Strict):
    think_time_s: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.0, 0.05)
    #: Seeds the payloads: the same seed sends the same images and impressions.
    seed: int = 0
    digits: DigitsMix = DigitsMix()
    ctr: CtrMix = CtrMix()

    @model_validator(mode="after")
    def _valid(self) -> TaskMix:
        _check_range(self.think_time_s, "think_time_s")
        if not (self.digits.weight or self.ctr.weight):
            raise ValueError("digits.weight and ctr.weight are both 0: nothing would be sent")
        return self

    def models_called(self) -> set[str]:
        """The models this mix sends requests to."""
        called = set()
        if self.digits.weight:
            if self.digits.tasks.one_image or self.digits.tasks.image_batch:
                called.add("digits")
            if self.digits.tasks.cnn_direct:
                called.add("digits_cnn")
        if self.ctr.weight:
            called.add("ctr")
        return called
