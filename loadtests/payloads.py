"""Realistic request payloads: held-out digit images and synthetic ad impressions.

- ``digits_images(seed)``: the held-out split of scikit-learn's bundled digits, scaled to uint8
  exactly as ``triton_deploy.build.examples.digits.recipe.load_splits(seed)`` does (same stratified
  shuffle), without importing torch (the recipe module does).
- ``impression_pool(n, seed, tail_share)``: impressions from the ctr recipe's generator, with
  ``tail_share`` of the categorical values rare or never seen in training (numpy only).
- ``page_view(pool, rng, ads)``: one page view's candidate ads: one user, one site, ``ads``
  different ads in positions 1..ads.

Pools are built once per process and shared by every simulated user (read-only).
"""

from __future__ import annotations

import functools
import random
from typing import Any

import numpy as np
import numpy.typing as npt

from .config import LoadTestConfigError

__all__ = ["digits_images", "impression_pool", "page_view"]

# The fields a page view shares across its candidate ads.
_USER_FIELDS = ("hour_of_day", "user_age", "device_type", "site_category", "country")


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
