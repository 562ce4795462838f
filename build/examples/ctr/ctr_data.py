"""A seeded synthetic impression log for click-through-rate prediction (ad serving).

Numpy only (the load tests import it). Each impression has numeric and categorical (string)
features; clicks follow a logistic model with interactions and long-tailed categories, so that
rare and unseen categories occur as they do in real traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from triton_deploy.build.examples.ctr.ctr_features import CATEGORICAL, NUMERIC

__all__ = [
    "CATEGORICAL",
    "CATEGORIES",
    "NUMERIC",
    "ImpressionLog",
    "columns_from_impressions",
    "generate_impressions",
    "generate_log",
]


# Common categories per field, most frequent first (long tails are generated on top).
CATEGORIES: dict[str, tuple[str, ...]] = {
    "device_type": ("mobile", "desktop", "tablet", "ctv"),
    "site_category": (
        "news",
        "sports",
        "entertainment",
        "finance",
        "technology",
        "travel",
        "food",
        "gaming",
        "health",
        "autos",
        "fashion",
        "education",
    ),
    "ad_category": (
        "retail",
        "travel",
        "auto",
        "finance",
        "gaming",
        "food",
        "telecom",
        "beauty",
        "software",
        "insurance",
    ),
    "country": ("US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "ES", "IT", "MX"),
}
# Affinity of ad category to site category: where an ad fits the page, people click more.
_AFFINITY = {
    ("travel", "travel"),
    ("auto", "autos"),
    ("finance", "finance"),
    ("gaming", "gaming"),
    ("food", "food"),
    ("software", "technology"),
    ("beauty", "fashion"),
    ("retail", "fashion"),
    ("insurance", "autos"),
    ("telecom", "technology"),
}
_DEVICE_EFFECT = {"mobile": 0.25, "desktop": 0.0, "tablet": 0.1, "ctv": -0.6}


class ImpressionLog:
    """Columns (dict of arrays: float32 numerics, str categoricals) and click labels."""

    def __init__(self, columns: dict[str, np.ndarray], clicks: np.ndarray) -> None:
        self.columns = columns
        self.clicks = clicks

    def __len__(self) -> int:
        return len(self.clicks)

    def impressions(self) -> list[dict[str, Any]]:
        """Rows as dicts, as a service would send them."""
        rows = []
        for i in range(len(self)):
            row: dict[str, Any] = {k: float(self.columns[k][i]) for k in NUMERIC}
            row.update({k: str(self.columns[k][i]) for k in CATEGORICAL})
            rows.append(row)
        return rows


def _categorical(rng: np.random.Generator, field: str, n: int, tail_share: float) -> np.ndarray:
    common = CATEGORIES[field]
    weights = 1.0 / np.arange(1, len(common) + 1) ** 1.1  # Zipf-like
    values = rng.choice(np.array(common, dtype=object), size=n, p=weights / weights.sum())
    tail = rng.random(n) < tail_share
    # Long tail: thousands of rare values, most of which a training sample never sees.
    values[tail] = [f"{field}_{k}" for k in rng.integers(0, 5000, size=int(tail.sum()))]
    return values


def generate_log(n: int, seed: int = 0, tail_share: float = 0.03) -> ImpressionLog:
    """``n`` impressions with clicks; ``tail_share`` of categorical values are rare/unseen ones."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {
        "hour_of_day": rng.integers(0, 24, n).astype(np.float32),
        "ad_position": rng.integers(1, 9, n).astype(np.float32),
        "user_age": np.clip(rng.normal(38, 13, n), 16, 90).round().astype(np.float32),
        "bid_floor": np.round(rng.lognormal(-0.5, 0.6, n), 3).astype(np.float32),
    }
    for field in CATEGORICAL:
        columns[field] = _categorical(rng, field, n, tail_share)
    hour = columns["hour_of_day"]
    logit = (
        -3.2
        - 0.35 * (columns["ad_position"] - 1)
        + 0.5 * np.cos((hour - 20) / 24 * 2 * np.pi)  # evenings click more
        - 0.012 * (columns["user_age"] - 35)
        + 0.4 * np.log(columns["bid_floor"] + 0.1)
        + np.array([_DEVICE_EFFECT.get(d, -0.2) for d in columns["device_type"]])
        + np.array(
            [
                0.9 if (a, s) in _AFFINITY else 0.0
                for a, s in zip(columns["ad_category"], columns["site_category"], strict=True)
            ]
        )
        + np.where(np.isin(columns["country"], ["US", "GB", "CA", "AU"]), 0.2, 0.0)
    )
    clicks = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return ImpressionLog(columns, clicks)


def generate_impressions(n: int, seed: int = 0, tail_share: float = 0.03) -> list[dict[str, Any]]:
    """``n`` impressions as dicts (no labels): realistic payloads for clients and load tests."""
    return generate_log(n, seed=seed, tail_share=tail_share).impressions()


def columns_from_impressions(impressions: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Impression dicts -> columns, as ``ImpressionLog.columns``."""
    columns: dict[str, np.ndarray] = {
        k: np.array([row[k] for row in impressions], dtype=np.float32) for k in NUMERIC
    }
    for k in CATEGORICAL:
        columns[k] = np.array([row[k] for row in impressions], dtype=object)
    return columns
