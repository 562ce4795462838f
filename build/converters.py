"""Converters: one small step per (source format -> served format), chained by ``plan_steps``.

Each converter takes an ``Artifact``, writes what the backend loads into the model's version
folder, and returns the next artifact (what it wrote, with the same reference function) and a
``Served``: how to run the written file the way the serving backend will (onnxruntime on the
exported ONNX; Treelite 4.3, FIL's own loader, on the tree file), for the parity check.

    pt2 -> onnx, torchscript -> onnx, onnx -> onnx (copy), onnx -> tensorrt_plan,
    xgboost_json|xgboost_ubj -> fil, lightgbm -> fil,
    huggingface folder -> tokenizer (python) + onnx + labels (python), as one ensemble
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build.artifacts import Artifact, Reference, config_tensors, onnx_session
from triton_deploy.build.fil import fil_output, treelite_predict, write_fil_model
from triton_deploy.build.formats import Format
from triton_deploy.build.spec import ModelSpec, TensorRTOptions
from triton_deploy.errors import BuildError

__all__ = [
    "CONVERTERS",
    "Companion",
    "Converter",
    "Served",
    "StepContext",
    "plan_steps",
    "target_of",
]

#: backend -> the file format it serves
_TARGETS = {"onnxruntime": "onnx", "tensorrt": "tensorrt_plan", "fil": "fil"}


def target_of(backend: str) -> str:
    return _TARGETS[backend]


@dataclass
class StepContext:
    model: ModelSpec
    version_dir: Path
    # (model, version, trtexec args) for build_plans.sh
    plans: list[tuple[str, int, list[str]]] = field(default_factory=list)


@dataclass
class Companion:
    """A model a converter writes beside the one it converts (a tokenizer, a label lookup),
    already in the repository under its own name, with its config."""

    name: str
    config: mc.ModelConfig
    version: int = 1


@dataclass
class Served:
    """What a conversion wrote, as the backend will run it (None: cannot run here)."""

    runner: Reference | None
    parameters: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    skipped: str | None = None  # why the written file cannot be checked here
    # Models written beside this one, and this model's own config when the converter makes
    # it (an ensemble over the companions); None: the pipeline writes the config.
    companions: list[Companion] = field(default_factory=list)
    config: mc.ModelConfig | None = None


class Converter(ABC):
    name: ClassVar[str]
    source: ClassVar[tuple[Format, ...]]
    target: ClassVar[str]

    @abstractmethod
    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]: ...


def _onnx_runner(path: Path) -> Reference:
    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    inputs = [i.name for i in session.get_inputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = session.run(names, {n: feeds[n] for n in inputs})
        return {name: _as_wire(value) for name, value in zip(names, values, strict=True)}

    return run


def _as_wire(value: np.ndarray) -> np.ndarray:
    """Strings as a client receives them from Triton: bytes."""
    if value.dtype.kind in "OU" and value.size and isinstance(value.flat[0], str):
        return np.vectorize(lambda v: v.encode(), otypes=[object])(value)
    return value


def _onnx_artifact(artifact: Artifact, path: Path) -> Artifact:
    return Artifact(Format.ONNX, path, artifact.inputs, artifact.outputs, artifact.reference)


class CopyOnnx(Converter):
    """The file as read, with the reader's edits (``onnx_edits``) and its external data
    inlined or copied alongside (``onnx_files.write_onnx``)."""

    name = "onnx (copy)"
    source: ClassVar[tuple[Format, ...]] = (Format.ONNX,)
    target = "onnx"

    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]:
        path = _write_onnx(artifact, context.version_dir)
        notes = "; ".join(artifact.info.get("notes", []))
        return _onnx_artifact(artifact, path), Served(_onnx_runner(path), detail=notes)


def _write_onnx(artifact: Artifact, version_dir: Path) -> Path:
    from triton_deploy.build.onnx_files import copy_onnx, write_onnx

    if "graph" in artifact.info:
        return write_onnx(
            artifact.info["graph"], artifact.info["external"], version_dir, "model.onnx"
        )
    return copy_onnx(artifact.path, version_dir)


class _TorchToOnnx(Converter):
    target = "onnx"
    export: ClassVar[Callable[..., Path]]

    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]:
        path = context.version_dir / "model.onnx"
        type(self).export(
            artifact, path, opset=context.model.opset, batching=context.model.max_batch_size > 0
        )
        return _onnx_artifact(artifact, path), Served(
            _onnx_runner(path), detail=f"opset {context.model.opset}"
        )


class Pt2ToOnnx(_TorchToOnnx):
    name = "pt2→onnx"
    source = (Format.TORCH_EXPORT,)

    @staticmethod
    def export(artifact: Artifact, path: Path, *, opset: int, batching: bool) -> Path:
        from triton_deploy.build.torch2onnx import export_torch_export

        return export_torch_export(artifact, path, opset=opset, batching=batching)


class TorchScriptToOnnx(_TorchToOnnx):
    name = "torchscript→onnx"
    source = (Format.TORCHSCRIPT,)

    @staticmethod
    def export(artifact: Artifact, path: Path, *, opset: int, batching: bool) -> Path:
        from triton_deploy.build.torch2onnx import export_torchscript

        return export_torchscript(artifact, path, opset=opset, batching=batching)


class OnnxToTensorRT(Converter):
    """The plan is built on a GPU here when there is one; ``build_plans.sh`` builds it on the
    serving GPU nodes anyway (plans are specific to the GPU and the TensorRT version)."""

    name = "onnx→tensorrt"
    source = (Format.ONNX,)
    target = "tensorrt_plan"

    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]:
        from triton_deploy.build.onnx2trt import (
            build_plan,
            gpu_unavailable_reason,
            plan_profiles,
            trtexec_args,
        )

        model = context.model
        onnx_path = context.version_dir / "model.onnx"
        if artifact.path != onnx_path:
            _write_onnx(artifact, context.version_dir)
        options = model.tensorrt or TensorRTOptions()
        profiles = plan_profiles(
            config_tensors(artifact.inputs, model.max_batch_size), model.max_batch_size, options
        )
        args = trtexec_args(
            f"{model.version}/model.onnx", f"{model.version}/model.plan", profiles, options
        )
        context.plans.append((model.name, model.version, args))
        reason = gpu_unavailable_reason()
        if reason is not None:
            return artifact, Served(
                None, skipped=f"plan not built: {reason}; build_plans.sh builds it on a GPU node"
            )
        tag = build_plan(onnx_path, context.version_dir / "model.plan", profiles, options)
        return artifact, Served(
            None,
            detail=f"plan built: sm{tag['compute_capability']} TensorRT {tag['tensorrt_version']} "
            f"{options.precision}; `tdeploy verify` checks its outputs on a GPU server",
        )


class TreesToFil(Converter):
    name = "trees→fil"
    source = (Format.XGBOOST_JSON, Format.XGBOOST_UBJ, Format.LIGHTGBM)
    target = "fil"

    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]:
        tree, plan = artifact.tree, artifact.fil
        strings = context.model.categorical == "strings"
        fil_dir = context.version_dir
        if strings:  # FIL serves beside a preprocessing model, under <name>_fil
            fil_dir = context.version_dir.parent.parent / f"{context.model.name}_fil"
            fil_dir = fil_dir / str(context.model.version)
        path = write_fil_model(tree, plan, fil_dir)
        checked_with = "Treelite 4.3 (Triton 24.10's FIL loader)"
        if (
            treelite_predict(path, plan.model_type, np.zeros((1, tree.n_features), np.float32))
            is None
        ):
            from triton_deploy.build.fil import read_tree_model

            reloaded = read_tree_model(
                path, Format.LIGHTGBM if plan.model_type == "lightgbm" else Format.XGBOOST_JSON
            )
            predict = reloaded.predict
            checked_with = "the written file reloaded (Treelite 4.3 not installed)"
        else:

            def predict(x: np.ndarray) -> np.ndarray:
                values = treelite_predict(path, plan.model_type, x)
                assert values is not None
                return values

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            features = np.asarray(feeds["input__0"], dtype=np.float32)
            return {"output__0": fil_output(predict(features), tree.task, plan)}

        note = f"{tree.objective}, {tree.n_features} features, checked with {checked_with}"
        if artifact.format is Format.XGBOOST_UBJ:
            note += "; UBJ source written as xgboost.json (the layout Triton 24.10's FIL reads)"
        written = Artifact(
            artifact.format,
            path,
            artifact.inputs,
            artifact.outputs,
            artifact.reference,
            artifact.info,
        )
        if tree.categories:
            table = json.dumps(tree.category_table(), indent=1) + "\n"
            (context.version_dir.parent / "categories.json").write_text(table)
            names = [tree.category_table()["features"][i] for i in sorted(tree.categories)]
            note += f"; categorical {names}: " + (
                "clients send strings (preprocessing model + ensemble)"
                if strings
                else "clients send category codes (categories.json maps names to codes)"
            )
        if strings:
            return written, _categorical_ensemble(artifact, context, run, plan.parameters(), note)
        return written, Served(run, plan.parameters(), detail=note)


def _categorical_ensemble(
    artifact: Artifact,
    context: StepContext,
    fil_run: Reference,
    parameters: dict[str, str],
    note: str,
) -> Served:
    """``categorical: strings``: <name>_categories (python: strings -> codes) -> <name>_fil."""
    from importlib import resources

    from triton_deploy.build import configs
    from triton_deploy.build.ensembles import validate_ensemble
    from triton_deploy.build.python_harness import PythonModelRunner
    from triton_deploy.build.spec import EnsembleSpec, EnsembleStep, TensorSpec

    model, tree = context.model, artifact.tree
    repository = context.version_dir.parent.parent
    batching = {
        "max_batch_size": model.max_batch_size,
        "dynamic_batching": model.dynamic_batching,
        "instance_group": model.instance_group,
    }
    features = [TensorSpec(name="input__0", dtype="FP32", dims=[tree.n_features])]
    outputs = config_tensors(artifact.outputs, model.max_batch_size)
    inputs = config_tensors(artifact.inputs, model.max_batch_size)
    fil = ModelSpec(
        name=f"{model.name}_fil",
        backend="fil",
        source=artifact.path.name,
        inputs=features,
        outputs=outputs,
        fil=model.fil,
        **batching,
    )
    pre = ModelSpec(
        name=f"{model.name}_categories",
        backend="python",
        python_model="model.py",
        inputs=inputs,
        outputs=features,
        **batching,
    )
    pre_dir = repository / pre.name / str(model.version)
    pre_dir.mkdir(parents=True, exist_ok=True)
    template = resources.files("triton_deploy.build").joinpath("tree_categories_model.py")
    (pre_dir / "model.py").write_bytes(template.read_bytes())
    (pre_dir / "categories.json").write_text(json.dumps(tree.category_table(), indent=1) + "\n")
    companions = []
    for member, parameters_ in ((pre, {}), (fil, parameters)):
        config = configs.model_config(
            member, list(member.inputs), list(member.outputs), parameters_
        )
        configs.write_config(config, repository / member.name)
        companions.append(Companion(member.name, config, model.version))
    ensemble = EnsembleSpec(
        name=model.name,
        version=model.version,
        max_batch_size=model.max_batch_size,
        inputs=inputs,
        outputs=outputs,
        steps=[
            EnsembleStep(
                model=pre.name,
                inputs={t.name: t.name for t in inputs},
                outputs={"input__0": "input__0"},
            ),
            EnsembleStep(
                model=fil.name, inputs={"input__0": "input__0"}, outputs={"output__0": "output__0"}
            ),
        ],
        tolerance=model.tolerance,
    )
    validate_ensemble(ensemble, {c.name: c.config for c in companions})
    # the generated preprocessing model itself, run as Triton runs it
    preprocess = PythonModelRunner(repository / pre.name, model.version, companions[0].config)

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return fil_run({"input__0": preprocess(feeds)["input__0"]})

    return Served(
        run,
        detail=note + f"; {pre.name} → {fil.name}",
        companions=companions,
        config=configs.ensemble_config(ensemble),
    )


class SklearnToOnnx(CopyOnnx):
    """An estimator converted by skl2onnx in the reader (no ZipMap, opsets for 24.10)."""

    name = "sklearn→onnx"
    source = (Format.SKLEARN_SKOPS, Format.SKLEARN_PICKLE)
    target = "onnx"


class SklearnToFil(Converter):
    """A tree ensemble imported by Treelite 4.3 (FIL's loader in Triton 24.10), written as
    ``checkpoint.tl`` and checked by reading it back the way FIL does."""

    name = "sklearn→fil"
    source = (Format.SKLEARN_SKOPS, Format.SKLEARN_PICKLE)
    target = "fil"

    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]:
        import treelite

        from triton_deploy.build.fil import FIL_FILENAMES

        context.version_dir.mkdir(parents=True, exist_ok=True)
        path = context.version_dir / FIL_FILENAMES["treelite_checkpoint"]
        artifact.info["treelite"].serialize(str(path))
        loaded = treelite.Model.deserialize(str(path))
        classifier, width = artifact.info["classifier"], artifact.info["width"]

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            x = np.asarray(feeds["input__0"], dtype=np.float32)
            values = np.asarray(treelite.gtil.predict(loaded, x)).reshape(x.shape[0], -1)
            if classifier and values.shape[1] == 1 and width == 2:  # binary: P(positive)
                values = np.hstack([1 - values, values])
            return {"output__0": values.astype(np.float32)}

        flag = {True: "true", False: "false"}
        options = context.model.fil
        parameters = {
            "model_type": "treelite_checkpoint",
            "output_class": flag[classifier],
            "predict_proba": flag[classifier],
            "threshold": f"{options.threshold if options else 0.5:g}",
        }
        detail = "; ".join(
            [
                *artifact.info.get("notes", []),
                f"{type(artifact.info['treelite']).__name__} from Treelite {treelite.__version__}"
                " as checkpoint.tl, read back as FIL reads it",
            ]
        )
        return artifact, Served(run, parameters, detail=detail)


class HfToEnsemble(Converter):
    """A Hugging Face folder → tokenizer (python, vendored `tokenizers`) → transformer (ONNX,
    dynamic batch and sequence) → labels (python) as one ensemble; see ``hf``."""

    name = "hf folder→ensemble"
    source = (Format.HUGGINGFACE,)
    target = "onnx"

    def convert(self, artifact: Artifact, context: StepContext) -> tuple[Artifact, Served]:
        from triton_deploy.build import configs
        from triton_deploy.build.ensembles import validate_ensemble
        from triton_deploy.build.hf import (
            companion_specs,
            export_transformer,
            write_labels,
            write_tokenizer,
        )
        from triton_deploy.build.python_harness import PythonModelRunner

        model, repository = context.model, context.version_dir.parent.parent
        members, ensemble = companion_specs(model, artifact)
        companions: list[Companion] = []
        runners: dict[str, Reference] = {}
        notes = []
        for member in members:
            directory = repository / member.name
            version_dir = directory / str(model.version)
            if member.backend == "onnxruntime":
                export_transformer(artifact, version_dir / "model.onnx", opset=model.opset)
            elif member.name.endswith("_tokenizer"):
                notes.append(write_tokenizer(artifact, version_dir))
            else:
                write_labels(artifact, version_dir)
            config = configs.model_config(member, list(member.inputs), list(member.outputs))
            configs.write_config(config, directory)
            companions.append(Companion(member.name, config, model.version))
            if member.backend == "python":
                runners[member.name] = PythonModelRunner(directory, model.version, config)
            else:
                runners[member.name] = _onnx_runner(version_dir / "model.onnx")
        validate_ensemble(ensemble, {c.name: c.config for c in companions})
        config = configs.ensemble_config(ensemble)
        chain = [(runners[s.model], s.inputs, s.outputs) for s in ensemble.steps]
        outputs = [t.name for t in ensemble.outputs]
        rows = max(model.max_batch_size, 1)

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            # As the server runs it: each request (here: each max_batch_size rows) is
            # tokenized and padded on its own.
            total = next(iter(feeds.values())).shape[0]
            parts: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
            for start in range(0, total, rows):
                tensors = {k: v[start : start + rows] for k, v in feeds.items()}
                for runner, inputs, produced in chain:
                    result = runner({m: tensors[e] for m, e in inputs.items()})
                    tensors.update({e: result[m] for m, e in produced.items()})
                for o in outputs:
                    parts[o].append(tensors[o])
            return {o: np.concatenate(v) for o, v in parts.items()}

        task = artifact.info["task"]
        notes.insert(0, f"{task}: {' → '.join(s.model for s in ensemble.steps)}")
        served = Served(run, detail="; ".join(notes), companions=companions, config=config)
        return artifact, served


CONVERTERS: dict[tuple[Format, str], type[Converter]] = {
    (fmt, cls.target): cls
    for cls in (
        CopyOnnx,
        Pt2ToOnnx,
        TorchScriptToOnnx,
        OnnxToTensorRT,
        TreesToFil,
        HfToEnsemble,
        SklearnToOnnx,
        SklearnToFil,
    )
    for fmt in cls.source
}


def plan_steps(fmt: Format, backend: str) -> list[Converter]:
    """The converters from ``fmt`` to what ``backend`` serves (through ONNX where needed)."""
    target = target_of(backend)
    direct = CONVERTERS.get((fmt, target))
    if direct is not None:
        return [direct()]
    to_onnx = CONVERTERS.get((fmt, "onnx"))
    onward = CONVERTERS.get((Format.ONNX, target))
    if to_onnx is not None and onward is not None:
        return [to_onnx(), onward()]
    raise BuildError(f"no conversion from {fmt} to {target} (backend '{backend}')")
