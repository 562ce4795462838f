"""CTR feature code: raw impression fields -> dense FP32 vector. One copy for train and serve.

Numpy and the standard library only: ``tdeploy build`` copies this file into the
``ctr_features`` Python model next to the vocabulary it was fitted with, so the served
features are computed by the very code the trainer used (no training/serving skew).

Numeric fields pass through (trees need no scaling) and must be finite. Each categorical field
is one-hot encoded over the values seen at least ``min_count`` times in training, plus an
``other`` slot that rare and unseen values fall into.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

import numpy as np

NUMERIC = ("hour_of_day", "ad_position", "user_age", "bid_floor")
CATEGORICAL = ("device_type", "site_category", "ad_category", "country")
OTHER = "__other__"


class FeatureError(ValueError):
    """A raw feature value that cannot be encoded; the message names the field and row."""


def _as_text(field: str, row: int, value: object) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FeatureError(
                f"input '{field}' row {row}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
    if not isinstance(value, str):
        raise FeatureError(
            f"input '{field}' row {row}: expected a string, got {type(value).__name__}"
        )
    if not value.strip():
        raise FeatureError(
            f"input '{field}' row {row}: empty category; send the category string "
            "(unseen values are accepted and encoded as 'other')"
        )
    return value


class FeatureEncoder:
    def __init__(self, vocabulary: Mapping[str, list[str]]) -> None:
        self.vocabulary = {field: list(vocabulary[field]) for field in CATEGORICAL}
        self._index = {
            f: {v: i for i, v in enumerate(values)} for f, values in self.vocabulary.items()
        }

    @classmethod
    def fit(cls, columns: Mapping[str, np.ndarray], min_count: int = 20) -> FeatureEncoder:
        vocabulary = {}
        for field in CATEGORICAL:
            counts = Counter(str(v) for v in columns[field])
            vocabulary[field] = sorted(v for v, c in counts.items() if c >= min_count)
        return cls(vocabulary)

    @property
    def feature_names(self) -> list[str]:
        names = list(NUMERIC)
        for field in CATEGORICAL:
            names += [f"{field}={v}" for v in self.vocabulary[field]] + [f"{field}={OTHER}"]
        return names

    @property
    def n_features(self) -> int:
        return len(NUMERIC) + sum(len(v) + 1 for v in self.vocabulary.values())

    def to_json(self) -> str:
        return json.dumps({"vocabulary": self.vocabulary}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FeatureEncoder:
        return cls(json.loads(text)["vocabulary"])

    def encode(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Columns (each [N] or [N, 1]) -> float32 [N, n_features]."""
        missing = [f for f in (*NUMERIC, *CATEGORICAL) if f not in columns]
        if missing:
            raise FeatureError(f"missing input(s) {', '.join(repr(f) for f in missing)}")
        flat = {f: np.asarray(columns[f]).reshape(-1) for f in (*NUMERIC, *CATEGORICAL)}
        rows = len(flat[NUMERIC[0]])
        for field, values in flat.items():
            if len(values) != rows:
                raise FeatureError(
                    f"input '{field}' has {len(values)} rows, '{NUMERIC[0]}' has {rows}"
                )
        out = np.zeros((rows, self.n_features), dtype=np.float32)
        for j, field in enumerate(NUMERIC):
            values = flat[field].astype(np.float32)
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.argmax(bad))
                raise FeatureError(
                    f"input '{field}' row {row}: {values[row]} is not a finite number"
                )
            out[:, j] = values
        offset = len(NUMERIC)
        for field in CATEGORICAL:
            index = self._index[field]
            other = len(self.vocabulary[field])
            for row, value in enumerate(flat[field]):
                text = _as_text(field, row, value)
                out[row, offset + index.get(text, other)] = 1.0
            offset += other + 1
        return out
