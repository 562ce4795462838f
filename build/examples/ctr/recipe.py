"""Recipe ``ctr``: an XGBoost click-through-rate classifier on the synthetic impression log.

Writes what a training pipeline hands over: the booster (``xgboost.json``), the vocabulary the
feature code was fitted with (``vocabulary.json``), and held-out samples for both stages:
``impressions.npz`` (raw fields, one [N, 1] array per field; categoricals as byte strings) and
``features.npz`` (the encoded FP32 feature matrix, key ``input__0`` as FIL names it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost

from triton_deploy.build.examples.ctr.ctr_data import generate_log
from triton_deploy.build.examples.ctr.ctr_features import CATEGORICAL, NUMERIC, FeatureEncoder
from triton_deploy.build.recipes import RecipeResult

__all__ = ["train"]

#: Held-out rows kept as samples (parity checks and golden cases).
SAMPLES = 2000


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def train(
    out: Path, seed: int = 0, n_train: int = 60_000, n_test: int = 10_000, n_trees: int = 250
) -> RecipeResult:
    train_log = generate_log(n_train, seed=seed)
    test_log = generate_log(n_test, seed=seed + 1)
    encoder = FeatureEncoder.fit(train_log.columns)
    x_train = encoder.encode(train_log.columns)
    x_test = encoder.encode(test_log.columns)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "max_depth": 6,
        "eta": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5,
        "tree_method": "hist",
        "seed": seed,
        "nthread": 2,
    }
    booster = xgboost.train(
        params,
        xgboost.DMatrix(x_train, label=train_log.clicks, feature_names=encoder.feature_names),
        num_boost_round=n_trees,
    )
    booster.save_model(str(out / "xgboost.json"))
    (out / "vocabulary.json").write_text(encoder.to_json())
    columns = {k: v[:SAMPLES] for k, v in test_log.columns.items()}
    raw: dict[str, np.ndarray] = {k: columns[k].astype(np.float32).reshape(-1, 1) for k in NUMERIC}
    raw |= {
        k: np.array([str(v).encode() for v in columns[k]], dtype=np.bytes_).reshape(-1, 1)
        for k in CATEGORICAL
    }
    np.savez(out / "impressions.npz", **raw)
    np.savez(out / "features.npz", input__0=x_test[:SAMPLES])
    scores = booster.inplace_predict(x_test, validate_features=False)
    eps = 1e-7
    log_loss = float(
        -np.mean(
            test_log.clicks * np.log(scores + eps)
            + (1 - test_log.clicks) * np.log(1 - scores + eps)
        )
    )
    return RecipeResult(
        metrics={"heldout_auc": _auc(test_log.clicks, scores), "heldout_log_loss": log_loss}
    )
