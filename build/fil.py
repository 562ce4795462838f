"""Tree models (XGBoost, LightGBM) for Triton's FIL backend.

What FIL needs, read from the tree model itself: the number of features (``input__0``
[n_features]), the task (binary, multiclass, regression) from the objective, and so the
``output__0`` width and the ``output_class`` / ``predict_proba`` parameters. Objectives FIL
cannot serve are refused with the list of those it can.

**Triton 24.10 compatibility.** The FIL backend of Triton 24.10 (server 2.51, the release this
project targets) loads tree models with Treelite 4.3.0, which cannot parse what XGBoost >= 3.1
writes: the ``cats`` field and the vector ``base_score``. Verified here: Treelite 4.3.0 fails
on XGBoost 3.2's JSON and UBJSON ("key 'cats' is not recognized"). ``fil_compatible_document``
rewrites the model in the older layout with the same predictions (always as ``xgboost.json``, as
XGBoost >= 3.1 cannot write UBJSON in that layout; FIL serves both alike): an empty ``cats`` is dropped,
a one-element ``base_score`` becomes a scalar, and a per-class ``base_score`` (multiclass) is
folded into the leaves of each class's first tree. The build then loads the written file with
Treelite 4.3.0 itself (when installed: the ``[build]`` extra pins it) and checks its
predictions against XGBoost's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from triton_deploy.build.formats import Format
from triton_deploy.build.spec import FilOptions
from triton_deploy.errors import ArtifactError

__all__ = [
    "FIL_FILENAMES",
    "TARGET_TREELITE",
    "FilPlan",
    "TreeModel",
    "fil_compatible_document",
    "fil_output",
    "plan_fil",
    "read_tree_model",
    "treelite_predict",
    "write_fil_model",
]

Task = Literal["binary", "multiclass", "regression"]
#: model_type -> the file name the FIL backend loads by default.
FIL_FILENAMES = {
    "xgboost_json": "xgboost.json",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
#: The Treelite release inside Triton 24.10's FIL backend (fil_backend r24.10, get_treelite.cmake).
TARGET_TREELITE = "4.3.0"

# XGBoost objectives Treelite 4.3 (and so FIL) loads, by what FIL's output means for them.
_XGB_CLASSIFIERS: dict[str, Task] = {
    "binary:logistic": "binary",
    "multi:softprob": "multiclass",
    "multi:softmax": "multiclass",
}
_XGB_REGRESSORS = frozenset(
    {
        "reg:squarederror",
        "reg:linear",
        "reg:squaredlogerror",
        "reg:pseudohubererror",
        "reg:logistic",
        "binary:logitraw",
        "binary:hinge",
        "count:poisson",
        "reg:gamma",
        "reg:tweedie",
        "survival:cox",
        "survival:aft",
        "rank:pairwise",
        "rank:ndcg",
        "rank:map",
    }
)
_LGB_CLASSIFIERS: dict[str, Task] = {
    "binary": "binary",
    "multiclass": "multiclass",
    "multiclassova": "multiclass",
}
_LGB_REGRESSORS = frozenset(
    {
        "regression",
        "regression_l1",
        "huber",
        "fair",
        "poisson",
        "quantile",
        "mape",
        "gamma",
        "tweedie",
        "cross_entropy",
        "cross_entropy_lambda",
        "lambdarank",
        "rank_xendcg",
    }
)


@dataclass(frozen=True)
class TreeModel:
    """A tree model file as FIL sees it, with its source framework's own prediction."""

    format: Format
    path: Path
    objective: str
    task: Task
    n_features: int
    n_classes: int  # 2 for binary, k for multiclass, 1 for regression
    predict: Callable[[np.ndarray], np.ndarray]  # the source framework: (n,) or (n, k)
    document: dict[str, Any] | None = None  # XGBoost: the model as JSON
    # Categorical features: feature index -> category names in code order (code = position;
    # empty when the file has categorical splits but no names, e.g. trained on codes).
    categories: dict[int, list[str]] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)

    def category_table(self) -> dict[str, Any]:
        """The mapping written beside the served model (``categories.json``)."""
        names = self.feature_names or [f"f{i}" for i in range(self.n_features)]
        return {
            "features": names,
            "categorical": {
                names[index]: {"index": index, "categories": values}
                for index, values in sorted(self.categories.items())
            },
            "unknown": "NaN (missing)",
        }


def _task(objective: str, classifiers: dict[str, Task], regressors: frozenset[str]) -> Task:
    if objective in classifiers:
        return classifiers[objective]
    if objective in regressors:
        return "regression"
    supported = ", ".join(sorted([*classifiers, *regressors]))
    raise ArtifactError(
        f"objective '{objective}' cannot be served by Triton's FIL backend "
        f"(Treelite {TARGET_TREELITE} in Triton 24.10 loads: {supported})"
    )


def read_tree_model(path: Path, fmt: Format) -> TreeModel:
    try:
        if fmt is Format.LIGHTGBM:
            return _read_lightgbm(path)
        return _read_xgboost(path, fmt)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from None


def _read_xgboost(path: Path, fmt: Format) -> TreeModel:
    import xgboost

    booster = xgboost.Booster()
    try:
        booster.load_model(str(path))
    except xgboost.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ArtifactError(f"XGBoost cannot load it ({first}); truncated or damaged?") from None
    document = json.loads(bytes(booster.save_raw("json")))
    learner = document["learner"]
    booster_name = learner["gradient_booster"]["name"]
    if booster_name not in ("gbtree", "dart"):
        raise ArtifactError(
            f"booster '{booster_name}' has no trees; FIL serves gbtree and dart models only"
        )
    params = learner["learner_model_param"]
    if int(params.get("num_target", "1") or 1) > 1:
        raise ArtifactError("multi-target (vector-leaf) models cannot be served by FIL")
    objective = learner["objective"]["name"]
    task = _task(objective, _XGB_CLASSIFIERS, _XGB_REGRESSORS)
    n_classes = {"binary": 2, "regression": 1}.get(task) or int(params["num_class"])
    booster.set_param({"nthread": 1})

    def predict(x: np.ndarray) -> np.ndarray:
        values = booster.inplace_predict(x.astype(np.float32), validate_features=False)
        return np.asarray(values, dtype=np.float32)

    return TreeModel(
        fmt,
        path,
        objective,
        task,
        booster.num_features(),
        n_classes,
        predict,
        document,
        categories=_xgboost_categories(document),
        feature_names=list(learner.get("feature_names") or []),
    )


def _xgboost_categories(document: dict[str, Any]) -> dict[int, list[str]]:
    """Categorical features of an XGBoost model: ``feature_types`` 'c', with their category
    names from the ``cats`` encoding XGBoost >= 3.1 stores (a code is a position in it)."""
    learner = document["learner"]
    types = list(learner.get("feature_types") or [])
    found: dict[int, list[str]] = {i: [] for i, kind in enumerate(types) if kind == "c"}
    for model in _tree_models(learner["gradient_booster"]):
        for index, encoding in enumerate((model.get("cats") or {}).get("enc") or []):
            offsets, values = encoding.get("offsets") or [], encoding.get("values") or []
            if offsets:
                raw = bytes(int(v) for v in values)
                found[index] = [
                    raw[start:end].decode("utf-8", "replace")
                    for start, end in itertools.pairwise(offsets)
                ]
            elif values:
                found[index] = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    return found


def _read_lightgbm(path: Path) -> TreeModel:
    import lightgbm

    try:
        booster = lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as exc:
        raise ArtifactError(f"LightGBM cannot load it ({exc}); truncated or damaged?") from None
    dump = booster.dump_model(num_iteration=1)
    objective = str(dump.get("objective", "")).split(" ")[0] or "custom"
    objective = {
        "regression_l2": "regression",
        "l2": "regression",
        "xentropy": "cross_entropy",
    }.get(objective, objective)
    if objective == "custom":
        raise ArtifactError(
            "the model was trained with a custom objective: FIL cannot know its output transform"
        )
    task = _task(objective, _LGB_CLASSIFIERS, _LGB_REGRESSORS)
    n_classes = {"binary": 2, "regression": 1}.get(task) or int(dump["num_class"])

    def predict(x: np.ndarray) -> np.ndarray:
        values = booster.predict(x.astype(np.float32), num_threads=1)
        return np.asarray(values, dtype=np.float32)

    return TreeModel(
        Format.LIGHTGBM,
        path,
        objective,
        task,
        booster.num_feature(),
        n_classes,
        predict,
        categories=_lightgbm_categories(booster, dump),
        feature_names=list(booster.feature_name()),
    )


def _lightgbm_categories(booster: Any, dump: dict[str, Any]) -> dict[int, list[str]]:
    """LightGBM's categorical features (``feature_infos`` lists their values, not a range),
    named by ``pandas_categorical`` when trained on a pandas category column."""
    names = list(booster.feature_name())
    infos = dump.get("feature_infos") or {}
    # a categorical feature lists the values it saw; a numeric one only its range
    indices = [
        i
        for i, name in enumerate(names)
        if isinstance(infos.get(name), dict) and infos[name].get("values")
    ]
    pandas = list(getattr(booster, "pandas_categorical", None) or [])
    found: dict[int, list[str]] = {}
    for position, index in enumerate(indices):
        values = pandas[position] if position < len(pandas) else []
        found[index] = [str(v) for v in values]
    return found


@dataclass(frozen=True)
class FilPlan:
    """The FIL settings for one tree model: file, parameters and the output width."""

    model_type: Literal["xgboost_json", "lightgbm"]
    output_class: bool
    predict_proba: bool
    threshold: float
    width: int
    use_experimental_optimizations: bool

    @property
    def filename(self) -> str:
        return FIL_FILENAMES[self.model_type]

    def parameters(self) -> dict[str, str]:
        """String parameters exactly as the FIL backend reads them (booleans "true"/"false").

        ``output_class`` (not ``is_classifier``) so the config serves on 24.10 (the local
        server) and on newer containers, which still honour it.
        """
        flag = {True: "true", False: "false"}
        return {
            "model_type": self.model_type,
            "output_class": flag[self.output_class],
            "predict_proba": flag[self.predict_proba],
            "threshold": f"{self.threshold:g}",
            "use_experimental_optimizations": flag[self.use_experimental_optimizations],
        }


def plan_fil(model: TreeModel, options: FilOptions | None) -> FilPlan:
    """FIL settings from the model, with the spec's ``fil:`` options where given (and checked)."""
    options = options or FilOptions()
    # XGBoost models (JSON or UBJ) are written as JSON: the layout Treelite 4.3 reads is
    # rewritten from JSON, and XGBoost >= 3.1 cannot save UBJ in that older layout.
    model_type = options.model_type or (
        "lightgbm" if model.format is Format.LIGHTGBM else "xgboost_json"
    )
    if (model_type == "lightgbm") != (model.format is Format.LIGHTGBM):
        raise ArtifactError(
            f"{model.path}: fil.model_type '{model_type}' does not fit a {model.format} model"
        )
    classifier = model.task != "regression"
    output_class = classifier if options.output_class is None else options.output_class
    if output_class and not classifier:
        raise ArtifactError(
            f"{model.path}: fil.output_class is true but objective '{model.objective}' is a "
            "regression objective"
        )
    if model.task == "multiclass" and not output_class:
        raise ArtifactError(
            f"{model.path}: a multiclass model ('{model.objective}') needs fil.output_class true"
        )
    softmax_index = model.objective == "multi:softmax"
    predict_proba = (
        (output_class and not softmax_index)
        if options.predict_proba is None
        else options.predict_proba
    )
    if predict_proba and not output_class:
        raise ArtifactError(f"{model.path}: fil.predict_proba needs output_class (a classifier)")
    if predict_proba and softmax_index:
        raise ArtifactError(
            f"{model.path}: 'multi:softmax' models give class indices, not probabilities: "
            "set fil.predict_proba false, or train with 'multi:softprob'"
        )
    if not (output_class and predict_proba):
        width = 1
    elif model.task == "binary":
        width = options.proba_width
    else:
        width = model.n_classes
    return FilPlan(
        model_type,
        output_class,
        predict_proba,
        options.threshold,
        width,
        options.use_experimental_optimizations,
    )


def fil_output(values: np.ndarray, task: Task, plan: FilPlan) -> np.ndarray:
    """``output__0`` as FIL defines it, from the framework's own prediction (n,) or (n, k)."""
    rows = values.shape[0]
    if not plan.output_class:
        return values.reshape(rows, 1).astype(np.float32)
    if task == "binary":
        p = values.reshape(rows)
        if plan.predict_proba:
            return (p[:, None] if plan.width == 1 else np.stack([1 - p, p], axis=1)).astype(
                np.float32
            )
        return (p > plan.threshold).astype(np.float32).reshape(rows, 1)
    if values.ndim == 1:  # multi:softmax: class indices already
        return values.reshape(rows, 1).astype(np.float32)
    if plan.predict_proba:
        return values.astype(np.float32)
    return np.argmax(values, axis=1).astype(np.float32).reshape(rows, 1)


# -- Triton 24.10 (Treelite 4.3) compatible files -----------------------------------------------
def _tree_models(node: Any) -> list[dict[str, Any]]:
    """Every dict holding ``trees`` (gbtree's model; dart nests one under ``gbtree``)."""
    found = []
    if isinstance(node, dict):
        if "trees" in node and "tree_info" in node:
            found.append(node)
        for value in node.values():
            found += _tree_models(value)
    return found


def fil_compatible_document(document: dict[str, Any]) -> dict[str, Any]:
    """An XGBoost JSON model rewritten for Treelite 4.3, with the same predictions."""
    document = json.loads(json.dumps(document))  # a deep copy
    params = document["learner"]["learner_model_param"]
    models = _tree_models(document["learner"]["gradient_booster"])
    for model in models:
        # XGBoost >= 3.1 keeps the category names (`cats`), which Treelite 4.3 rejects; FIL
        # takes category codes, and the names go beside the model (categories.json).
        model.pop("cats", None)
    base = str(params.get("base_score", "0"))
    if base.startswith("["):
        values = [v.strip() for v in base.strip("[]").split(",") if v.strip()]
        if len(values) == 1:
            params["base_score"] = values[0]
        else:
            # One base score per class: add each to the leaves of that class's first tree, and
            # make the shared base score zero (multiclass base scores are margins already).
            params["base_score"] = "0E0"
            for model in models:
                seen: set[int] = set()
                for index, group in enumerate(model["tree_info"]):
                    if group in seen:
                        continue
                    seen.add(group)
                    _add_to_leaves(model["trees"][index], float(values[group]))
    return document


def _add_to_leaves(tree: dict[str, Any], amount: float) -> None:
    for node, left in enumerate(tree["left_children"]):
        if left == -1:
            value = float(np.float32(tree["split_conditions"][node]) + np.float32(amount))
            tree["split_conditions"][node] = value
            tree["base_weights"][node] = value


def write_fil_model(model: TreeModel, plan: FilPlan, version_directory: Path) -> Path:
    """The file FIL loads (its default name for the model_type), readable by Triton 24.10."""
    version_directory.mkdir(parents=True, exist_ok=True)
    path = version_directory / plan.filename
    if model.format is Format.LIGHTGBM:
        path.write_bytes(model.path.read_bytes())
        return path
    assert model.document is not None
    document = fil_compatible_document(model.document)
    path.write_text(json.dumps(document, separators=(",", ":")))
    return path


def treelite_predict(path: Path, model_type: str, features: np.ndarray) -> np.ndarray | None:
    """Predictions of ``path`` as Triton 24.10's FIL loads it (Treelite 4.3's own loader and
    reference predictor), shaped like the source framework's; None without Treelite 4.3."""
    try:
        import treelite
    except ImportError:
        return None
    if not str(treelite.__version__).startswith(TARGET_TREELITE.rsplit(".", 1)[0]):
        return None
    try:
        if model_type == "lightgbm":
            loaded = treelite.frontend.load_lightgbm_model(str(path))
        else:
            loaded = treelite.frontend.load_xgboost_model(str(path), format_choice="json")
    except Exception as exc:  # Treelite raises its own TreeliteError
        raise ArtifactError(
            f"{path}: Treelite {treelite.__version__} (Triton 24.10's FIL) cannot load the "
            f"written file: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}"
        ) from None
    values = np.asarray(treelite.gtil.predict(loaded, features.astype(np.float32)))
    values = values.reshape(values.shape[0], -1)
    return values[:, 0] if values.shape[1] == 1 else values
