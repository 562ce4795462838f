"""XGBoost -> FIL (``backend: "fil"``): the model file, tensors and parameters of the FIL contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost

from triton_deploy.build.spec import FilOptions, TensorSpec

__all__ = ["FIL_FILENAMES", "fil_parameters", "fil_tensors", "reference_predict", "save_fil_model"]

#: model_type -> the file name the FIL backend loads by default.
FIL_FILENAMES = {
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "xgboost": "xgboost.model",
}


def save_fil_model(booster: xgboost.Booster, version_directory: Path, options: FilOptions) -> Path:
    version_directory.mkdir(parents=True, exist_ok=True)
    path = version_directory / FIL_FILENAMES[options.model_type]
    if options.model_type == "xgboost":
        # The legacy binary format; XGBoost writes it for a name without .json/.ubj suffix.
        booster.save_model(str(path.with_suffix(".deprecated")))
        path.with_suffix(".deprecated").rename(path)
    else:
        booster.save_model(str(path))
    return path


def fil_parameters(options: FilOptions) -> dict[str, str]:
    """String parameters exactly as the FIL backend reads them (booleans "true"/"false").

    ``output_class`` (not ``is_classifier``) so the config serves on 24.10 (the local server)
    and on newer containers, which still honour it.
    """
    flag = {True: "true", False: "false"}
    return {
        "model_type": options.model_type,
        "output_class": flag[options.output_class],
        "predict_proba": flag[options.predict_proba],
        "threshold": f"{options.threshold:g}",
        "use_experimental_optimizations": flag[options.use_experimental_optimizations],
    }


def fil_tensors(
    n_features: int, options: FilOptions, n_classes: int = 2
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    if options.output_class and options.predict_proba:
        width = options.proba_width if n_classes == 2 else n_classes
    else:
        width = 1
    return (
        [TensorSpec(name="input__0", dtype="FP32", dims=[n_features])],
        [TensorSpec(name="output__0", dtype="FP32", dims=[width])],
    )


def reference_predict(booster: xgboost.Booster, features: np.ndarray) -> np.ndarray:
    """What FIL computes for a binary classifier with predict_proba: P(click), from FP32 input."""
    return np.asarray(
        booster.inplace_predict(features.astype(np.float32), validate_features=False),
        dtype=np.float32,
    )
