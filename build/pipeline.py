"""``tdeploy build``: a spec in, a Triton model repository out.

Each model is built by one step (torch2onnx, onnx2trt, xgboost2fil, python model, ensemble)
that returns a ``StepResult`` with a status (OK / FAIL / SKIPPED). The pipeline trains each
recipe once, writes every config.pbtxt from protobuf classes, checks the parity of every
converted model with its source framework, validates ensemble wiring, and records a
``manifest.json`` (versions, sources, sha256 of every file, framework versions, parity).
Golden verification cases go to ``<out>/../.tdeploy/<out-name>/`` for ``tdeploy verify``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build import configs
from triton_deploy.build.ensembles import validate_ensemble
from triton_deploy.build.golden import GoldenCase, artifacts_directory
from triton_deploy.build.recipes import resolve_recipe
from triton_deploy.build.spec import BuildSpec, EnsembleSpec, ModelSpec, TensorSpec
from triton_deploy.errors import BuildError, TritonDeployError
from triton_deploy.runtime.repository import read_config

__all__ = ["BuildReport", "StepResult", "artifacts_directory", "build_repository"]

Status = Literal["OK", "FAIL", "SKIPPED"]
MANIFEST = "manifest.json"
PLANS_SCRIPT = "build_plans.sh"
FRAMEWORKS = ("torch", "onnx", "onnxruntime", "xgboost", "tensorrt", "tritonclient", "numpy")


@dataclass
class StepResult:
    model: str
    step: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    parity: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class BuildReport:
    repository: Path
    results: list[StepResult]
    up_to_date: bool = False

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.status == "FAIL"]

    @property
    def skipped(self) -> list[StepResult]:
        return [r for r in self.results if r.status == "SKIPPED"]

    def table(self) -> Table:
        table = Table(title=f"tdeploy build → {self.repository}")
        for column in ("model", "step", "status", "parity (max abs diff / tol)", "detail"):
            table.add_column(column)
        style = {"OK": "green", "FAIL": "bold red", "SKIPPED": "yellow"}
        for r in self.results:
            parity = ""
            if r.parity:
                parity = f"{r.parity['max_abs_diff']:.2e} / {r.parity['atol']:.0e}"
            detail = r.detail or ", ".join(f"{k}={v:.4f}" for k, v in r.metrics.items())
            table.add_row(r.model, r.step, f"[{style[r.status]}]{r.status}[/]", parity, detail)
        return table


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _framework_versions() -> dict[str, str]:
    versions = {}
    for name in FRAMEWORKS:
        for dist in (name, f"{name}-cpu", f"{name}-cu12"):
            try:
                versions[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


def _code_fingerprint() -> str:
    """Hash of the build code and recipes: a change there invalidates an up-to-date build."""
    digest = hashlib.sha256()
    for package in (
        "triton_deploy.build",
        "triton_deploy.build.recipes",
        "triton_deploy.build.python_models",
        "triton_deploy.runtime.backends",
    ):
        root = resources.files(package)
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                digest.update(entry.name.encode())
                digest.update(entry.read_bytes())
    return digest.hexdigest()


def parity(served: np.ndarray, reference: np.ndarray, atol: float, rtol: float) -> dict[str, Any]:
    served = np.asarray(served, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if served.shape != reference.shape:
        return {
            "max_abs_diff": float("inf"),
            "atol": atol,
            "rtol": rtol,
            "passed": False,
            "samples": int(reference.shape[0]) if reference.ndim else 1,
            "problem": f"shape {list(served.shape)} != {list(reference.shape)}",
        }
    diff = np.abs(served - reference)
    ok = bool(np.all(diff <= atol + rtol * np.abs(reference)))
    return {
        "max_abs_diff": float(diff.max(initial=0.0)),
        "atol": atol,
        "rtol": rtol,
        "passed": ok,
        "samples": int(reference.shape[0]),
    }


def _checked(
    model: ModelSpec,
    step: str,
    converted: np.ndarray,
    reference: np.ndarray,
    metrics: dict[str, float],
    failure: str,
) -> StepResult:
    """A conversion step's result: OK when the converted model matches its source in tolerance."""
    check = parity(converted, reference, model.tolerance.atol, model.tolerance.rtol)
    passed = check["passed"]
    return StepResult(
        model.name,
        step,
        "OK" if passed else "FAIL",
        "" if passed else failure,
        parity=check,
        metrics=metrics,
    )


class _Build:
    def __init__(self, spec: BuildSpec, out: Path, only: set[str] | None, console: Console) -> None:
        self.spec = spec
        self.out = out
        self.only = only
        self.console = console
        self.trained: dict[str, Any] = {}
        self.cases: dict[str, GoldenCase] = {}
        self.tensors: dict[str, tuple[list[TensorSpec], list[TensorSpec]]] = {}
        self.plans: list[tuple[str, int, list[str]]] = []
        self.results: list[StepResult] = []

    # -- helpers ------------------------------------------------------------------------------
    def recipe(self, reference: str) -> Any:
        if reference not in self.trained:
            result = resolve_recipe(reference)(seed=self.spec.seed)
            self.trained[reference] = result
            self.cases.update(result.golden_cases())
        return self.trained[reference]

    def version_dir(self, model: ModelSpec) -> Path:
        path = self.out / model.name / str(model.version)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(
        self,
        model: ModelSpec,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
        parameters: dict[str, str] | None = None,
    ) -> None:
        configs.write_config(
            configs.model_config(model, inputs, outputs, parameters), self.out / model.name
        )
        self.tensors[model.name] = (inputs, outputs)

    # -- one step per backend -----------------------------------------------------------------
    def onnxruntime(self, model: ModelSpec) -> StepResult:
        import torch

        from triton_deploy.build.torch2onnx import export_onnx, onnx_tensors, run_onnx

        assert model.recipe is not None
        trained = self.recipe(model.recipe)
        path = export_onnx(
            trained.model,
            torch.from_numpy(trained.parity_inputs[:2]),
            self.version_dir(model) / "model.onnx",
            input_name=trained.input_name,
            output_name=trained.output_name,
            opset=model.opset,
            max_batch_size=model.max_batch_size,
        )
        import onnx

        graph = onnx.load(str(path))
        strip = (
            (lambda t: TensorSpec(name=t.name, dtype=t.dtype, dims=t.dims[1:]))
            if model.max_batch_size > 0
            else (lambda t: t)
        )
        inputs = [strip(t) for t in onnx_tensors(graph, "input")]
        outputs = [strip(t) for t in onnx_tensors(graph, "output")]
        self.write(model, inputs, outputs)
        x = trained.parity_inputs
        with torch.no_grad():
            reference = trained.model(torch.from_numpy(x)).numpy()
        served = run_onnx(path, {trained.input_name: x})[trained.output_name]
        return _checked(
            model,
            "torch2onnx",
            served,
            reference,
            trained.metrics,
            "ONNX output differs from torch beyond tolerance",
        )

    def tensorrt(self, model: ModelSpec) -> StepResult:
        from triton_deploy.build.onnx2trt import (
            build_plan,
            gpu_unavailable_reason,
            plan_profiles,
            trtexec_args,
        )
        from triton_deploy.build.spec import TensorRTOptions

        assert model.onnx_from is not None
        source = self.spec.model(model.onnx_from)
        source_dir = self.out / source.name
        if model.onnx_from not in self.tensors:  # not rebuilt in this run: read what is there
            if not (source_dir / "config.pbtxt").exists():
                raise BuildError(
                    f"model '{model.name}': build '{model.onnx_from}' first (its ONNX is the source)"
                )
            config = read_config(source_dir / "config.pbtxt")
            self.tensors[model.onnx_from] = (
                configs.tensor_specs(config.input),
                configs.tensor_specs(config.output),
            )
        inputs, outputs = self.tensors[model.onnx_from]
        version_dir = self.version_dir(model)
        onnx_path = version_dir / "model.onnx"
        shutil.copy2(source_dir / str(source.version) / "model.onnx", onnx_path)
        options = model.tensorrt or TensorRTOptions()
        profiles = plan_profiles(inputs, model.max_batch_size, options)
        args = trtexec_args(
            f"{model.version}/model.onnx", f"{model.version}/model.plan", profiles, options
        )
        self.plans.append((model.name, model.version, args))
        self.write(model, inputs, outputs)
        reason = gpu_unavailable_reason()
        if reason is not None:
            return StepResult(
                model.name,
                "onnx2trt",
                "SKIPPED",
                f"plan not built: {reason}; build_plans.sh builds it on a GPU node",
            )
        tag = build_plan(onnx_path, version_dir / "model.plan", profiles, options)
        return StepResult(
            model.name,
            "onnx2trt",
            "OK",
            f"sm{tag['compute_capability']} TensorRT {tag['tensorrt_version']} {options.precision}",
        )

    def fil(self, model: ModelSpec) -> StepResult:
        import xgboost

        from triton_deploy.build.spec import FilOptions
        from triton_deploy.build.xgboost2fil import (
            fil_parameters,
            fil_tensors,
            reference_predict,
            save_fil_model,
        )

        assert model.recipe is not None
        trained = self.recipe(model.recipe)
        options = model.fil or FilOptions()
        path = save_fil_model(trained.booster, self.version_dir(model), options)
        inputs, outputs = fil_tensors(trained.n_features, options)
        self.write(model, inputs, outputs, fil_parameters(options))
        reloaded = xgboost.Booster()
        reloaded.load_model(str(path))
        x = trained.parity_inputs
        return _checked(
            model,
            "xgboost2fil",
            reference_predict(reloaded, x),
            trained.predict(x).reshape(-1),
            trained.metrics,
            "saved model differs from the trained one",
        )

    def python(self, model: ModelSpec) -> StepResult:
        assert model.python_model is not None
        version_dir = self.version_dir(model)
        source = resources.files("triton_deploy.build.python_models").joinpath(model.python_model)
        if not source.is_file():
            raise BuildError(
                f"model '{model.name}': python_model file '{model.python_model}' not found in build/python_models/"
            )
        (version_dir / "model.py").write_bytes(source.read_bytes())
        shared = resources.files("triton_deploy.runtime.backends").joinpath("tdeploy_batching.py")
        (version_dir / "tdeploy_batching.py").write_bytes(shared.read_bytes())
        for module in model.shared_code:
            code = resources.files("triton_deploy.build.recipes").joinpath(f"{module}.py")
            if not code.is_file():
                raise BuildError(
                    f"model '{model.name}': shared_code '{module}' is not a module of build/recipes/"
                )
            (version_dir / f"{module}.py").write_bytes(code.read_bytes())
        if model.assets_from is not None:
            for name, content in self.recipe(model.assets_from).assets().items():
                (version_dir / name).write_bytes(content)
        self.write(model, model.inputs, model.outputs)
        return StepResult(
            model.name,
            "python model",
            "OK",
            f"model.py + {', '.join(model.shared_code) or 'no shared code'}",
        )

    def ensemble(self, ensemble: EnsembleSpec) -> StepResult:
        members: dict[str, mc.ModelConfig] = {}
        for step in ensemble.steps:
            path = self.out / step.model / "config.pbtxt"
            if not path.exists():
                raise BuildError(
                    f"ensemble '{ensemble.name}': member '{step.model}' has no config in {self.out}"
                )
            members[step.model] = read_config(path)
        validate_ensemble(ensemble, members)
        configs.write_config(configs.ensemble_config(ensemble), self.out / ensemble.name)
        (self.out / ensemble.name / str(ensemble.version)).mkdir(parents=True, exist_ok=True)
        return StepResult(
            ensemble.name, "ensemble", "OK", " → ".join(s.model for s in ensemble.steps)
        )

    # -- the whole build ----------------------------------------------------------------------
    def run(self) -> list[StepResult]:
        jobs: list[tuple[str, Callable[[], StepResult]]] = []
        # A TensorRT plan is built from another model's ONNX: that model goes first.
        order = sorted(self.spec.models, key=lambda m: m.backend == "tensorrt")
        for model in order:
            if self.only is None or model.name in self.only:
                jobs.append((model.name, lambda m=model: getattr(self, m.backend)(m)))  # type: ignore[misc]
        for ensemble in self.spec.ensembles:
            if self.only is None or ensemble.name in self.only:
                jobs.append((ensemble.name, lambda e=ensemble: self.ensemble(e)))  # type: ignore[misc]
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=not self.console.is_terminal,
        ) as progress:
            task = progress.add_task("building", total=len(jobs))
            for name, job in jobs:
                progress.update(task, description=f"building [bold]{name}[/]")
                started = time.perf_counter()
                try:
                    result = job()
                except TritonDeployError as exc:
                    result = StepResult(name, "build", "FAIL", str(exc))
                result.seconds = time.perf_counter() - started
                self.results.append(result)
                progress.advance(task)
        return self.results


def _manifest(spec: BuildSpec, out: Path, results: list[StepResult], code: str) -> dict[str, Any]:
    models: dict[str, Any] = {}
    by_name = {r.model: r for r in results}
    entries: list[ModelSpec | EnsembleSpec] = [*spec.models, *spec.ensembles]
    for entry in entries:
        directory = out / entry.name
        files = {
            str(p.relative_to(out)): _sha256(p)
            for p in sorted(directory.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }
        result = by_name.get(entry.name)
        models[entry.name] = {
            "version": entry.version,
            "backend": getattr(entry, "backend", "ensemble"),
            "source": getattr(entry, "recipe", None)
            or getattr(entry, "onnx_from", None)
            or getattr(entry, "python_model", None)
            or "ensemble",
            "status": result.status if result else "not rebuilt",
            "detail": result.detail if result else "",
            "parity": result.parity if result else None,
            "metrics": result.metrics if result else {},
            "files": files,
        }
    return {
        "format": 1,
        "spec_fingerprint": spec.fingerprint(),
        "code_fingerprint": code,
        "seed": spec.seed,
        "frameworks": _framework_versions(),
        "models": models,
    }


def _up_to_date(spec: BuildSpec, out: Path, code: str) -> bool:
    path = out / MANIFEST
    if not path.exists():
        return False
    manifest = json.loads(path.read_text())
    if (
        manifest.get("spec_fingerprint") != spec.fingerprint()
        or manifest.get("code_fingerprint") != code
    ):
        return False
    for entry in manifest.get("models", {}).values():
        if entry.get("status") == "FAIL":
            return False
        for rel, digest in entry.get("files", {}).items():
            file = out / rel
            if not file.exists() or _sha256(file) != digest:
                return False
    return True


def build_repository(
    spec: BuildSpec,
    out: Path,
    *,
    only: set[str] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> BuildReport:
    console = console or Console(stderr=True)
    out = out.resolve()
    names = {m.name for m in spec.models} | {e.name for e in spec.ensembles}
    if only:
        unknown = sorted(only - names)
        if unknown:
            raise BuildError(
                f"--only names unknown model(s) {unknown}; the spec has {sorted(names)}"
            )
    code = _code_fingerprint()
    if not force and only is None and _up_to_date(spec, out, code):
        return BuildReport(out, [], up_to_date=True)
    out.mkdir(parents=True, exist_ok=True)
    build = _Build(spec, out, only, console)
    results = build.run()
    if build.plans:
        from triton_deploy.build.onnx2trt import build_plans_script

        script = out / PLANS_SCRIPT
        script.write_text(build_plans_script(build.plans))
        script.chmod(0o755)
    artifacts = artifacts_directory(out)
    artifacts.mkdir(parents=True, exist_ok=True)
    for name, case in build.cases.items():
        if name in names:
            case.save(artifacts / f"{name}.npz")
    manifest = _manifest(spec, out, results, code)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return BuildReport(out, results)
