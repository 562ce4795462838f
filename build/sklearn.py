"""scikit-learn estimators, read from skops' secure format (or a pickle the spec trusts).

``.skops`` files load with ``skops.io.load`` only when every type in them is one skops trusts
by default, one of scikit-learn's own (``sklearn.*``), or one the spec lists in
``trusted_types:``; a ``.joblib``/``.pkl`` file is a
pickle, which runs code from the file when loaded, so it is read only with
``trust_pickle: true`` (and the build says so).

What serves it:

- **tree ensembles** (RandomForest, ExtraTrees, GradientBoosting, HistGradientBoosting,
  classifiers and regressors) → **FIL**, through Treelite's scikit-learn importer, as a
  ``checkpoint.tl`` of Treelite 4.3 (the FIL of Triton 24.10): ``input__0`` FP32
  [n_features] → ``output__0`` FP32 = ``predict_proba`` (classifiers, [n_classes]) or
  ``predict`` (regressors, [1]);
- **everything else** (pipelines, linear models, SVMs, ...) → **ONNX** through skl2onnx, with
  no ZipMap and the opsets Triton 24.10's onnxruntime runs: ``X`` FP32 [n_features] →
  ``label`` (``predict``) and ``probabilities`` (``predict_proba``), or ``variable``
  (regressors).

``init`` writes ``backend: fil`` for tree ensembles; a spec without ``backend:`` serves any
estimator through ONNX.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.build.artifacts import Artifact, Tensor
from triton_deploy.build.formats import Format
from triton_deploy.build.spec import ModelSpec
from triton_deploy.errors import ArtifactError

__all__ = ["TREE_ENSEMBLES", "is_tree_ensemble", "load_estimator", "read_sklearn"]

TREE_ENSEMBLES = frozenset(
    {
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    }
)
#: skl2onnx opsets for Triton 24.10's onnxruntime 1.19.
TARGET_OPSETS = {"": 21, "ai.onnx.ml": 3}


def load_estimator(path: Path, fmt: Format, model: ModelSpec) -> Any:
    if fmt is Format.SKLEARN_PICKLE:
        if not model.trust_pickle:
            raise ArtifactError(
                f"{path}: a pickle runs code from the file when it is loaded: save the model with "
                "skops (skops.io.dump(model, 'model.skops')), or set `trust_pickle: true` in the "
                "spec if you trust this file"
            )
        import joblib

        warnings.warn(f"{path}: loading a pickle (trust_pickle: true)", stacklevel=2)
        try:
            return joblib.load(path)
        except Exception as exc:
            raise ArtifactError(f"{path}: the pickle does not load ({exc})") from None
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=str(path))
    except Exception as exc:
        raise ArtifactError(f"{path}: not a readable skops file ({exc})") from None
    # scikit-learn's own classes (e.g. sklearn.tree._tree.Tree, which skops 0.16 lists as
    # untrusted) are data holders rebuilt by skops without pickle: trusted here; any other
    # type must be named by the spec.
    refused = sorted(
        t for t in set(untrusted) - set(model.trusted_types) if not t.startswith("sklearn.")
    )
    if refused:
        raise ArtifactError(
            f"{path}: holds types skops does not trust by default: {refused}; list them under "
            "`trusted_types:` in the spec if you trust this file"
        )
    try:
        return skops.io.load(str(path), trusted=list(untrusted) or None)
    except Exception as exc:
        raise ArtifactError(f"{path}: skops cannot load it ({exc})") from None


def is_tree_ensemble(estimator: Any) -> bool:
    return type(estimator).__name__ in TREE_ENSEMBLES


def _classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(estimator)) and hasattr(estimator, "predict_proba")


def read_sklearn(path: Path, fmt: Format, model: ModelSpec) -> Artifact:
    estimator = load_estimator(path, fmt, model)
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None:
        raise ArtifactError(
            f"{path}: {type(estimator).__name__} is not fitted (no n_features_in_): fit it "
            "before saving"
        )
    if model.max_batch_size < 1:
        raise ArtifactError(f"{path}: scikit-learn models are served batched: max_batch_size >= 1")
    classifier = _classifier(estimator)
    kind = type(estimator).__name__
    if model.backend == "fil":
        if not is_tree_ensemble(estimator):
            raise ArtifactError(
                f"{path}: {kind} is not a tree ensemble, which FIL serves: remove "
                "`backend: fil` (it is served through ONNX)"
            )
        return _fil_artifact(path, fmt, estimator, int(n_features), classifier)
    return _onnx_artifact(path, fmt, estimator, int(n_features), classifier)


def _loaded_with(fmt: Format) -> list[str]:
    if fmt is Format.SKLEARN_PICKLE:
        return ["warning: loaded with pickle (trust_pickle: true); prefer skops"]
    return []


def _fil_artifact(
    path: Path, fmt: Format, estimator: Any, n_features: int, classifier: bool
) -> Artifact:
    import treelite
    import treelite.sklearn

    try:
        imported = treelite.sklearn.import_model(estimator)
    except Exception as exc:
        raise ArtifactError(
            f"{path}: Treelite {treelite.__version__} (Triton 24.10's FIL) cannot import "
            f"{type(estimator).__name__}: {exc}; set `backend: onnxruntime` to serve it "
            "through ONNX"
        ) from None
    width = len(estimator.classes_) if classifier else 1

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(feeds["input__0"], dtype=np.float32)
        if classifier:
            return {"output__0": estimator.predict_proba(x).astype(np.float32)}
        return {"output__0": estimator.predict(x).astype(np.float32).reshape(-1, 1)}

    info = {
        "treelite": imported,
        "classifier": classifier,
        "width": width,
        "notes": _loaded_with(fmt),
    }
    inputs = [Tensor("input__0", "FP32", (-1, n_features))]
    outputs = [Tensor("output__0", "FP32", (-1, width))]
    return Artifact(fmt, path, inputs, outputs, reference, info)


def _onnx_artifact(
    path: Path, fmt: Format, estimator: Any, n_features: int, classifier: bool
) -> Artifact:
    from skl2onnx import to_onnx

    from triton_deploy.build.onnx_files import ExternalData

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    options = {id(final): {"zipmap": False}} if classifier else None
    example = np.zeros((1, n_features), dtype=np.float32)
    try:
        graph = to_onnx(estimator, example, options=options, target_opset=TARGET_OPSETS)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"{path}: skl2onnx cannot convert {type(estimator).__name__} ({first}); tree "
            "ensembles can go to FIL instead (`backend: fil`)"
        ) from None
    names = [o.name for o in graph.graph.output]
    strings = classifier and np.asarray(estimator.classes_).dtype.kind in "OSU"
    if classifier:
        outputs = [
            Tensor(names[0], "BYTES" if strings else "INT64", (-1,)),
            Tensor(names[1], "FP32", (-1, len(estimator.classes_))),
        ]
    else:
        outputs = [Tensor(names[0], "FP32", (-1, 1))]
    input_name = graph.graph.input[0].name

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(feeds[input_name], dtype=np.float32)
        if not classifier:
            return {names[0]: estimator.predict(x).astype(np.float32).reshape(-1, 1)}
        label = estimator.predict(x)
        label = (
            np.array([str(v).encode() for v in label], dtype=object)
            if strings
            else label.astype(np.int64)
        )
        return {names[0]: label, names[1]: estimator.predict_proba(x).astype(np.float32)}

    info = {
        "graph": graph,
        "external": ExternalData(path.parent),
        "notes": [
            *_loaded_with(fmt),
            f"{type(estimator).__name__} converted with skl2onnx (no ZipMap)",
        ],
    }
    inputs = [Tensor(input_name, "FP32", (-1, n_features))]
    return Artifact(fmt, path, inputs, outputs, reference, info)
