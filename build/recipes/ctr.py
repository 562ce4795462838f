"""Recipe ``ctr``: an XGBoost click-through-rate classifier on the synthetic impression log."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost

from triton_deploy.build.recipes import GoldenCase
from triton_deploy.build.recipes.ctr_data import ImpressionLog, generate_log
from triton_deploy.build.recipes.ctr_features import CATEGORICAL, NUMERIC, FeatureEncoder

__all__ = ["TrainedCtr", "train"]


@dataclass
class TrainedCtr:
    booster: xgboost.Booster
    encoder: FeatureEncoder
    auc: float  # held-out ROC AUC
    log_loss: float
    test: ImpressionLog  # held-out impressions (a different seed stream from training)

    @property
    def metrics(self) -> dict[str, float]:
        return {"heldout_auc": self.auc, "heldout_log_loss": self.log_loss}

    @property
    def n_features(self) -> int:
        return self.encoder.n_features

    @property
    def parity_inputs(self) -> np.ndarray:
        return self.encoder.encode(self.test.columns)

    def predict(self, features: np.ndarray) -> np.ndarray:
        scores = self.booster.inplace_predict(features.astype(np.float32), validate_features=False)
        return np.asarray(scores, dtype=np.float32).reshape(-1, 1)

    def assets(self) -> dict[str, bytes]:
        return {"vocabulary.json": self.encoder.to_json().encode()}

    def golden_cases(self, n: int = 2000) -> dict[str, GoldenCase]:
        """Held-out impressions through the feature code and XGBoost, in-process."""
        columns = {k: v[:n] for k, v in self.test.columns.items()}
        features = self.encoder.encode(columns)
        raw = {k: columns[k].astype(np.float32).reshape(-1, 1) for k in NUMERIC}
        raw |= {k: columns[k].astype(object).reshape(-1, 1) for k in CATEGORICAL}
        probability = self.predict(features)
        return {
            "ctr_features": GoldenCase(raw, {"FEATURES": features}),
            "ctr_xgb": GoldenCase({"input__0": features}, {"output__0": probability}),
            "ctr": GoldenCase(raw, {"CLICK_PROB": probability}),
        }


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def train(
    seed: int = 0, n_train: int = 60_000, n_test: int = 10_000, n_trees: int = 250
) -> TrainedCtr:
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
    scores = booster.inplace_predict(x_test, validate_features=False)
    eps = 1e-7
    log_loss = float(
        -np.mean(
            test_log.clicks * np.log(scores + eps)
            + (1 - test_log.clicks) * np.log(1 - scores + eps)
        )
    )
    return TrainedCtr(booster, encoder, _auc(test_log.clicks, scores), log_loss, test_log)
