"""``tdeploy build``: a spec in, a Triton model repository out, atomically.

1. **Check first.** Every reference of the spec is resolved before anything runs: recipe
   functions import, every file exists and is the format it claims, Python models define
   ``TritonPythonModel``, the output folder is writable. A problem is one error naming the file.
2. **Recipes** run (each once), writing their files into a work folder.
3. **Models**, in dependency order: each source file is read into an ``Artifact`` (tensors
   inferred), converted by the steps ``plan_steps`` chains (pt2→onnx, trees→fil, ...),
   configured (config.pbtxt from the in-memory tensors, through protobuf classes), and checked:
   the written file, run as the backend runs it, against the source framework on the samples.
   The samples and the source's outputs become the model's golden case.
4. **Ensembles**: wiring checked against the members' configs of this build, golden cases and
   parity from the members' references and served runs, composed step by step.
5. **Swap.** Everything is written into a staging folder beside ``--out``; only a build whose
   steps all passed replaces the repository, in one atomic rename (``renameat2`` exchange).
   A failed, interrupted or killed build leaves the previous repository exactly as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import hashlib
import importlib.metadata
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build import configs
from triton_deploy.build.artifacts import (
    Artifact,
    Reference,
    Tensor,
    config_tensors,
    declared_tensors,
    read_artifact,
)
from triton_deploy.build.converters import Served, StepContext, plan_steps
from triton_deploy.build.ensembles import validate_ensemble
from triton_deploy.build.formats import Format, detect_format
from triton_deploy.build.python_harness import PythonModelRunner, check_python_model
from triton_deploy.build.recipes import RecipeResult, resolve_recipe
from triton_deploy.build.samples import load_expected, load_samples, synthesize_samples
from triton_deploy.build.spec import (
    BuildSpec,
    EnsembleSpec,
    ModelSpec,
    RecipeOutput,
    model_references,
    parse_reference,
)
from triton_deploy.errors import (
    ArtifactError,
    BuildError,
    ResourceError,
    SpecError,
    TritonDeployError,
)
from triton_deploy.repository import (
    GOLDEN_FILE,
    MANIFEST,
    PLANS_SCRIPT,
    GoldenCase,
    Manifest,
    ManifestError,
    ModelEntry,
    Parity,
    Tolerance,
    digests,
    parity,
    read_manifest,
    write_manifest,
)
from triton_deploy.resources import EXHAUSTION_ERRNOS, find_os_error, resource_error

__all__ = ["MANIFEST", "BuildReport", "StepResult", "build_repository", "parity", "preflight"]

Status = Literal["OK", "FAIL", "SKIPPED"]
FRAMEWORKS = (
    "torch",
    "onnx",
    "onnxruntime",
    "xgboost",
    "lightgbm",
    "treelite",
    "tensorrt",
    "tritonclient",
    "numpy",
)
_WORK_PREFIX = ".tdeploy-build-"


@dataclass
class StepResult:
    model: str
    step: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    parity: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    samples: str = ""


@dataclass
class BuildReport:
    repository: Path
    results: list[StepResult]
    up_to_date: bool = False
    swapped: bool = False  # the repository was replaced by this build

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if r.status == "FAIL"]

    @property
    def skipped(self) -> list[StepResult]:
        return [r for r in self.results if r.status == "SKIPPED"]

    def table(self) -> Table:
        table = Table(title=f"tdeploy build → {self.repository}")
        for column in (
            "model",
            "steps",
            "status",
            "parity (max abs diff / tol)",
            "samples",
            "detail",
        ):
            table.add_column(column)
        style = {"OK": "green", "FAIL": "bold red", "SKIPPED": "yellow"}
        for r in self.results:
            parity_text = ""
            if r.parity:
                parity_text = f"{r.parity['max_abs_diff']:.2e} / {r.parity['atol']:.0e}"
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in r.metrics.items())
            detail = "; ".join(x for x in (r.detail, metrics) if x)
            table.add_row(
                r.model, r.step, f"[{style[r.status]}]{r.status}[/]", parity_text, r.samples, detail
            )
        return table


# -- parity (the comparison lives with the golden cases) ---------------------------------------
def _exact(value: np.ndarray) -> bool:
    return value.dtype.kind in "biuOSU"


def _combined(checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    worst = max(checks.values(), key=lambda c: (not c["passed"], c["max_abs_diff"]))
    return {**worst, "passed": all(c["passed"] for c in checks.values()), "outputs": checks}


# -- the served shape of a model's tensors -----------------------------------------------------
def _as_config_shaped(function: Reference, config: mc.ModelConfig) -> Reference:
    """``function`` (model-shaped arrays) taking and giving arrays as clients see them: a
    tensor with a ``reshape`` is [N, *dims] on the wire and [N, *reshape] in the model."""
    batching = config.max_batch_size > 0
    reshaped_in = {t.name: list(t.reshape.shape) for t in config.input if t.HasField("reshape")}
    dims_out = {t.name: list(t.dims) for t in config.output}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {
            name: (
                value.reshape(
                    (value.shape[0], *reshaped_in[name]) if batching else reshaped_in[name]
                )
                if name in reshaped_in
                else value
            )
            for name, value in feeds.items()
        }
        out = function(feeds)
        shaped = {}
        for name, value in out.items():
            if name not in dims_out:
                continue
            want = (value.shape[0], *dims_out[name]) if batching and value.ndim else None
            if want is not None and -1 not in want and int(np.prod(want)) == value.size:
                value = value.reshape(want)
            shaped[name] = value
        return shaped

    return run


def _config_samples(
    samples: dict[str, np.ndarray], config: mc.ModelConfig
) -> dict[str, np.ndarray]:
    """Model-shaped samples as a client sends them (reshape inputs get their config dims)."""
    batching = config.max_batch_size > 0
    out = dict(samples)
    for t in config.input:
        if t.HasField("reshape") and t.name in out:
            value = out[t.name]
            out[t.name] = value.reshape((value.shape[0], *t.dims) if batching else tuple(t.dims))
    return out


# -- what a built model leaves for ensembles and the manifest ------------------------------------
@dataclass
class BuiltModel:
    config: mc.ModelConfig
    reference: Reference | None = None  # config-shaped
    runner: Reference | None = None  # config-shaped
    samples: dict[str, np.ndarray] | None = None  # config-shaped
    expected: dict[str, np.ndarray] | None = None  # config-shaped, from the samples' expected/
    onnx: Artifact | None = None  # the ONNX this model serves (for onnx_from)
    source: str = ""
    source_sha256: str = ""
    format: str = ""
    companion_of: str = ""  # a model a converter wrote beside this one (a tokenizer, ...)


# -- check first -------------------------------------------------------------------------------
@dataclass
class Resolved:
    """Every file reference of the spec, resolved: (model, key, value) -> path or recipe output."""

    files: dict[tuple[str, str, str], Path | RecipeOutput] = field(default_factory=dict)
    recipes: dict[str, Callable[..., Any]] = field(default_factory=dict)
    recipe_files: dict[str, Path] = field(default_factory=dict)  # recipe -> its code file
    formats: dict[str, Format] = field(default_factory=dict)  # model -> source format (known now)
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # model -> its file, read


def _module_file(function: Callable[..., Any]) -> Path | None:
    module = sys.modules.get(getattr(function, "__module__", ""), None)
    origin = getattr(module, "__file__", None)
    return Path(origin) if origin else None


def preflight(spec: BuildSpec, out: Path, names: set[str] | None = None) -> Resolved:
    """Resolve and check every reference (of ``names`` only, when given) before any work."""
    resolved = Resolved()
    problems: list[str] = []
    used_recipes: set[str] = set()
    for model in spec.models:
        if names is not None and model.name not in names:
            continue
        for key, value in model_references(model):
            reference = parse_reference(value)
            if isinstance(reference, RecipeOutput):
                resolved.files[(model.name, key, value)] = reference
                used_recipes.add(reference.recipe)
                continue
            path = spec.resolve_path(reference)
            resolved.files[(model.name, key, value)] = path
            try:
                if not path.exists():
                    raise ArtifactError(
                        f"{path}: file not found ({key} of model '{model.name}'; relative paths "
                        f"resolve against the spec's folder {spec.base})"
                    )
                if not path.is_file() and not (key == "source" and path.is_dir()):
                    raise ArtifactError(f"{path}: not a file ({key} of model '{model.name}')")
                if key == "source":
                    fmt = detect_format(path, model.format)
                    resolved.formats[model.name] = fmt
                    resolved.artifacts[model.name] = read_artifact(path, fmt, model)
                elif key in ("python_model",):
                    check_python_model(path)
                elif key == "shared_code":
                    _check_python_source(path)
                elif key == "samples" and path.suffix.lower() not in (".npz", ".npy", ".txt"):
                    raise ArtifactError(
                        f"{path}: samples must be a .npz or .npy file (or .txt, one text a line)"
                    )
            except ArtifactError as exc:
                _raise_if_exhausted(exc)
                problems.append(str(exc))
    for ensemble in spec.ensembles:
        if ensemble.samples is None or (names is not None and ensemble.name not in names):
            continue
        reference = parse_reference(ensemble.samples)
        if isinstance(reference, RecipeOutput):
            used_recipes.add(reference.recipe)
        elif not spec.resolve_path(reference).is_file():
            problems.append(
                f"{spec.resolve_path(reference)}: samples of ensemble '{ensemble.name}' not found"
            )
    for recipe in spec.recipes:
        if recipe.name not in used_recipes:
            continue
        try:
            function = resolve_recipe(recipe.function, spec.base)
            resolved.recipes[recipe.name] = function
            code = _module_file(function)
            if code is not None:
                resolved.recipe_files[recipe.name] = code
        except SpecError as exc:
            problems.append(str(exc))
    for model in spec.models:  # samples of user files must fit the file they go with
        artifact = resolved.artifacts.get(model.name)
        samples = resolved.files.get((model.name, "samples", model.samples or ""))
        if artifact is not None and isinstance(samples, Path) and samples.is_file():
            try:
                load_samples(samples, artifact.inputs, batching=model.max_batch_size > 0)
            except ArtifactError as exc:
                _raise_if_exhausted(exc)
                problems.append(str(exc))
    problems += _check_output(out)
    if len(problems) == 1:
        raise BuildError(problems[0])
    if problems:
        raise BuildError(
            f"{len(problems)} problems; nothing was built:\n"
            + "\n".join(f"  {p}" for p in problems)
        )
    return resolved


def _raise_if_exhausted(exc: BaseException) -> None:
    """A check that failed because the machine ran out of something (file descriptors,
    memory, disk) says so, instead of blaming the file it was reading."""
    cause = find_os_error(exc)
    if cause is not None and cause.errno in EXHAUSTION_ERRNOS:
        error = resource_error(exc)
        assert error is not None
        raise error from None


def _check_python_source(path: Path) -> None:
    import ast

    try:
        ast.parse(path.read_bytes().decode("utf-8"), filename=str(path))
    except (UnicodeDecodeError, SyntaxError) as exc:
        raise ArtifactError(f"{path}: not valid UTF-8 Python source ({exc})") from None


def _check_output(out: Path) -> list[str]:
    """The repository's folder must be replaceable: a real write probe beside it (permission
    bits say nothing for root or read-only mounts)."""
    if out.exists() and not out.is_dir():
        return [f"{out}: --out exists and is not a directory"]
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    probe = parent / f".{out.name}.tdeploy-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return [f"{out}: cannot write in {parent} ({exc.strerror})"]
    if out.exists():
        for directory in (out, *(p for p in out.iterdir() if p.is_dir())):
            if not os.access(directory, os.W_OK):
                return [f"{directory}: is read-only; the build replaces {out} and must remove it"]
    return []


# -- the atomic swap ---------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def _swap_in(staged: Path, out: Path, trash: Path) -> None:
    """Replace ``out`` by ``staged``; the old repository ends up at ``staged`` (or ``trash``)."""
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(out)
        return
    if _exchange(staged, out):
        return
    out.rename(trash)  # not atomic across these two renames, but never a mixed repository
    staged.rename(out)


def _remove_tree(path: Path) -> None:
    """Remove a work folder even when the process is short of file descriptors (rmtree keeps a
    descriptor open per level and gives up silently): then again one entry at a time. What
    still cannot go is removed by the next build (``_remove_stale_work``)."""
    shutil.rmtree(path, ignore_errors=True)
    if not path.exists():
        return
    gc.collect()  # file objects a failed step left open hold descriptors too
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, name))
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _remove_stale_work(out: Path) -> None:
    """Work folders of builds that were killed (their process is gone)."""
    for work in out.parent.glob(f".{out.name}{_WORK_PREFIX}*"):
        pid = work.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # a build still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the build like Ctrl-C (cleanup runs), in the main thread."""
    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- fingerprints ------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    if path.is_dir():  # a model folder (save_pretrained): its files, names and contents
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(_sha256(file).encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Hash of the build code and the local backends: a change there invalidates a build."""
    digest = hashlib.sha256()
    for package in ("triton_deploy.build", "triton_deploy.runtime.backends"):
        root = Path(str(resources.files(package)))
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _inputs_fingerprint(spec: BuildSpec, resolved: Resolved) -> str:
    digest = hashlib.sha256(spec.fingerprint().encode())
    digest.update(_code_fingerprint().encode())
    for key, target in sorted(resolved.files.items(), key=lambda kv: kv[0]):
        digest.update(repr(key).encode())
        if isinstance(target, Path):
            digest.update(_sha256(target).encode())
    for name, artifact in sorted(resolved.artifacts.items()):  # weights outside the file
        for location in sorted(artifact.external_files()):
            digest.update(f"{name}:{location}".encode())
            digest.update(_sha256(artifact.path.parent / location).encode())
    for name, code in sorted(resolved.recipe_files.items()):
        digest.update(name.encode())
        if code.is_file():
            digest.update(_sha256(code).encode())
    return digest.hexdigest()


def _up_to_date(out: Path, fingerprint: str) -> bool:
    try:
        manifest = read_manifest(out)
    except ManifestError:
        return False
    if manifest is None or manifest.inputs_fingerprint != fingerprint:
        return False
    if any(entry.status == "FAIL" for entry in manifest.models.values()):
        return False
    try:
        return digests(out) == manifest.all_files()
    except ManifestError:  # a symlink crept in
        return False


# -- the build ---------------------------------------------------------------------------------
def _closure(spec: BuildSpec, only: set[str]) -> set[str]:
    """``--only`` plus what must be rebuilt with it: ensembles using a rebuilt model (their
    golden cases change), those ensembles' members (their references compose them), the
    ONNX source of a TensorRT model and the TensorRT models built from a rebuilt ONNX."""
    names = set(only)
    while True:
        grown = set(names)
        for ensemble in spec.ensembles:
            members = {s.model for s in ensemble.steps}
            if ensemble.name in grown or members & grown:
                grown |= members | {ensemble.name}
        for model in spec.models:
            if model.onnx_from is not None and (model.name in grown or model.onnx_from in grown):
                grown |= {model.name, model.onnx_from}
        if grown == names:
            return names
        names = grown


class _Build:
    def __init__(
        self,
        spec: BuildSpec,
        staged: Path,
        recipes_dir: Path,
        resolved: Resolved,
        names: set[str],
        previous: Path,
        console: Console,
    ) -> None:
        self.spec = spec
        self.staged = staged
        self.recipes_dir = recipes_dir
        self.resolved = resolved
        self.names = names
        self.previous = previous
        self.console = console
        self.metrics: dict[str, dict[str, float]] = {}  # recipe -> metrics
        self.built: dict[str, BuiltModel] = {}
        self.results: list[StepResult] = []
        self.context_plans: list[tuple[str, int, list[str]]] = []

    # -- recipes -------------------------------------------------------------------------------
    def run_recipes(self) -> None:
        for name, function in self.resolved.recipes.items():
            recipe = self.spec.recipe(name)
            folder = self.recipes_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            self.console.log(f"recipe [bold]{name}[/]: {recipe.function}")
            try:
                result = function(folder, seed=self.spec.seed)
            except TritonDeployError:
                raise
            except Exception as exc:
                raise BuildError(
                    f"recipe '{name}' ({recipe.function}) failed: {type(exc).__name__}: {exc}"
                ) from exc
            missing = [f for f in recipe.outputs if not (folder / f).is_file()]
            if missing:
                raise BuildError(
                    f"recipe '{name}' ({recipe.function}) did not write {missing} (its declared outputs)"
                )
            metrics = result.metrics if isinstance(result, RecipeResult) else dict(result or {})
            self.metrics[name] = {k: float(v) for k, v in metrics.items()}
            self.console.log(
                f"recipe [bold]{name}[/] done in {time.perf_counter() - started:.1f} s"
            )

    def path_of(self, model: str, key: str, value: str) -> Path:
        target = self.resolved.files.get((model, key, value))
        if target is None:
            reference = parse_reference(value)
            target = (
                reference
                if isinstance(reference, RecipeOutput)
                else self.spec.resolve_path(reference)
            )
        if isinstance(target, RecipeOutput):
            return self.recipes_dir / target.recipe / target.file
        return target

    def recipe_metrics(self, model: ModelSpec) -> dict[str, float]:
        found: dict[str, float] = {}
        for _, value in model_references(model):
            reference = parse_reference(value)
            if isinstance(reference, RecipeOutput):
                found |= self.metrics.get(reference.recipe, {})
        return found

    # -- one model -----------------------------------------------------------------------------
    def version_dir(self, name: str, version: int) -> Path:
        path = self.staged / name / str(version)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def build_model(self, model: ModelSpec) -> StepResult:
        version_dir = self.version_dir(model.name, model.version)
        context = StepContext(model, version_dir, self.context_plans)
        if model.backend == "python":
            return self.build_python(model, version_dir)
        if model.onnx_from is not None:
            source_model = self.built[model.onnx_from]
            assert source_model.onnx is not None
            artifact = source_model.onnx
            fmt, source_label = Format.ONNX, f"onnx of {model.onnx_from}"
            source_sha = source_model.source_sha256
        else:
            assert model.source is not None
            path = self.path_of(model.name, "source", model.source)
            fmt = self.resolved.formats.get(model.name) or detect_format(path, model.format)
            artifact = self.resolved.artifacts.get(model.name) or read_artifact(path, fmt, model)
            source_label, source_sha = model.source, _sha256(path)
        steps = plan_steps(fmt, model.backend)
        served = Served(None)
        current = artifact
        for step in steps:
            current, served = step.convert(current, context)
        inputs = config_tensors(current.inputs, model.max_batch_size)
        outputs = config_tensors(current.outputs, model.max_batch_size)
        config = served.config or configs.model_config(model, inputs, outputs, served.parameters)
        configs.write_config(config, self.staged / model.name)
        for companion in served.companions:  # written by the converter, config included
            self.built[companion.name] = BuiltModel(
                companion.config, source=f"written for {model.name}", companion_of=model.name
            )
        built = BuiltModel(
            config,
            source=source_label,
            source_sha256=source_sha,
            format=str(fmt),
            onnx=current
            if current.format is Format.ONNX and model.backend == "onnxruntime"
            else None,
        )
        self.built[model.name] = built
        step_names = " → ".join(s.name for s in steps)
        samples, samples_label = self.samples_for(
            model, current.inputs, artifact.info.get("synthesize")
        )
        built.samples = _config_samples(samples, config)
        if artifact.reference is not None:
            built.reference = _as_config_shaped(artifact.reference, config)
        given = self.expected_for(model, samples, [t.name for t in current.outputs])
        if given:
            built.expected = _as_config_shaped(lambda _: given, config)(built.samples)
            samples_label += f" + expected {sorted(given)}"
        if served.runner is not None:
            built.runner = _as_config_shaped(served.runner, config)
        result = self.check(
            model.name, step_names, built, model.tolerance.atol, model.tolerance.rtol, served
        )
        result.samples = samples_label
        result.metrics = self.recipe_metrics(model)
        if served.detail:
            result.detail = "; ".join(x for x in (served.detail, result.detail) if x)
        return result

    def build_python(self, model: ModelSpec, version_dir: Path) -> StepResult:
        assert model.python_model is not None
        shutil.copyfile(
            self.path_of(model.name, "python_model", model.python_model), version_dir / "model.py"
        )
        helper = resources.files("triton_deploy.runtime.backends").joinpath("tdeploy_batching.py")
        (version_dir / "tdeploy_batching.py").write_bytes(helper.read_bytes())
        copied = []
        for key, values in (("shared_code", model.shared_code), ("assets", model.assets)):
            for value in values:
                path = self.path_of(model.name, key, value)
                if not path.is_file():
                    raise ArtifactError(f"{path}: not found ({key} of model '{model.name}')")
                if path.name in ("model.py", GOLDEN_FILE, "tdeploy_batching.py"):
                    raise ArtifactError(f"{path}: a {key} file may not be named '{path.name}'")
                shutil.copyfile(path, version_dir / path.name)
                copied.append(path.name)
        inputs = declared_tensors(model.inputs, model.max_batch_size)
        config = configs.model_config(model, list(model.inputs), list(model.outputs))
        configs.write_config(config, self.staged / model.name)
        source_path = self.path_of(model.name, "python_model", model.python_model)
        built = BuiltModel(
            config, source=model.python_model, source_sha256=_sha256(source_path), format="python"
        )
        self.built[model.name] = built
        runner = PythonModelRunner(self.staged / model.name, model.version, config)
        built.reference = built.runner = _as_config_shaped(runner, config)
        samples, samples_label = self.samples_for(model, inputs)
        built.samples = _config_samples(samples, config)
        result = self.check(
            model.name,
            "python model",
            built,
            model.tolerance.atol,
            model.tolerance.rtol,
            Served(None, skipped=None),
            same_code=True,
        )
        result.samples = samples_label
        result.metrics = self.recipe_metrics(model)
        result.detail = "; ".join(
            x for x in (f"model.py + {', '.join(copied) or 'no other files'}", result.detail) if x
        )
        return result

    def samples_for(
        self,
        model: ModelSpec,
        inputs: list[Tensor],
        synthesize: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    ) -> tuple[dict[str, np.ndarray], str]:
        batching = model.max_batch_size > 0
        if model.samples is not None:
            path = self.path_of(model.name, "samples", model.samples)
            samples = load_samples(path, inputs, batching=batching)
            rows = next(iter(samples.values())).shape[0] if batching else 1
            return samples, f"{model.samples} ({rows} rows)"
        samples = synthesize_samples(inputs, batching=batching, seed=self.spec.seed)
        if synthesize is not None:  # the reader knows valid values (e.g. category codes)
            samples = synthesize(samples)
        rows = next(iter(samples.values())).shape[0] if batching else 1
        return samples, f"synthesized ({rows} rows; give `samples:` for real inputs)"

    def expected_for(
        self, model: ModelSpec, samples: dict[str, np.ndarray], outputs: list[str]
    ) -> dict[str, np.ndarray]:
        """The samples' ``expected/<output>`` arrays (the training framework's outputs)."""
        if model.samples is None:
            return {}
        path = self.path_of(model.name, "samples", model.samples)
        rows = next(iter(samples.values())).shape[0] if model.max_batch_size > 0 else None
        return load_expected(path, outputs, rows)

    def check(
        self,
        name: str,
        step: str,
        built: BuiltModel,
        atol: float,
        rtol: float,
        served: Served,
        same_code: bool = False,
    ) -> StepResult:
        """Golden case from the reference; parity of the served run against it."""
        assert built.samples is not None
        exact_outputs = []
        if built.reference is None:
            return StepResult(name, step, "SKIPPED", "no reference to check against")
        try:
            expected = built.reference(built.samples)
        except ArtifactError as exc:
            return StepResult(name, step, "FAIL", f"the source model fails on the samples: {exc}")
        if built.expected is not None:  # the training framework's own outputs win
            expected = {**expected, **built.expected}
        for output_name, value in expected.items():
            if _exact(np.asarray(value)):
                exact_outputs.append(output_name)
        GoldenCase(built.samples, expected, exact_outputs, atol, rtol).save(
            self.staged / name / GOLDEN_FILE
        )
        if same_code:
            return StepResult(name, step, "OK", "runs its own code in-process: nothing converted")
        if built.runner is None:
            status: Status = "SKIPPED" if served.skipped else "OK"
            return StepResult(name, step, status, served.skipped or "")
        try:
            got = built.runner(built.samples)
        except ArtifactError as exc:
            return StepResult(
                name, step, "FAIL", f"the converted model fails on the samples: {exc}"
            )
        checks = {
            output: parity(got.get(output, np.array([])), value, atol, rtol)
            for output, value in expected.items()
        }
        check = _combined(checks)
        if check["passed"]:
            return StepResult(name, step, "OK", parity=check)
        bad = [
            f"{o}: " + c.get("problem", "max abs diff {:.3g}".format(c["max_abs_diff"]))
            for o, c in checks.items()
            if not c["passed"]
        ]
        return StepResult(
            name,
            step,
            "FAIL",
            "converted model differs from the source beyond tolerance (" + "; ".join(bad) + ")",
            parity=check,
        )

    # -- ensembles -----------------------------------------------------------------------------
    def build_ensemble(self, ensemble: EnsembleSpec) -> StepResult:
        members = {
            s.model: self.built[s.model].config for s in ensemble.steps if s.model in self.built
        }
        validate_ensemble(ensemble, members)
        config = configs.ensemble_config(ensemble)
        configs.write_config(config, self.staged / ensemble.name)
        (self.staged / ensemble.name / str(ensemble.version)).mkdir(parents=True, exist_ok=True)
        built = BuiltModel(config, source="ensemble", format="ensemble")
        self.built[ensemble.name] = built
        path = " → ".join(s.model for s in ensemble.steps)
        if ensemble.samples is not None:
            inputs = declared_tensors(list(ensemble.inputs), ensemble.max_batch_size)
            sample_path = self.path_of(ensemble.name, "samples", ensemble.samples)
            built.samples = load_samples(sample_path, inputs, batching=ensemble.max_batch_size > 0)
            label = f"{ensemble.samples}"
        else:
            built.samples, label = self.ensemble_samples(ensemble)
        if built.samples is None:
            return StepResult(ensemble.name, path, "SKIPPED", label)
        built.reference = self.composed(ensemble, "reference")
        built.runner = self.composed(ensemble, "runner")
        result = self.check(
            ensemble.name,
            path,
            built,
            ensemble.tolerance.atol,
            ensemble.tolerance.rtol,
            Served(None, skipped="a member cannot run here"),
        )
        rows = next(iter(built.samples.values())).shape[0]
        result.samples = f"{label} ({rows} rows)"
        return result

    def ensemble_samples(self, ensemble: EnsembleSpec) -> tuple[dict[str, np.ndarray] | None, str]:
        """The ensemble's inputs taken from the samples of the members they feed."""
        samples: dict[str, np.ndarray] = {}
        origin = set()
        for tensor in ensemble.inputs:
            for step in ensemble.steps:
                member_input = next((m for m, e in step.inputs.items() if e == tensor.name), None)
                member = self.built.get(step.model)
                if member_input is not None and member is not None and member.samples is not None:
                    samples[tensor.name] = member.samples[member_input]
                    origin.add(step.model)
                    break
            else:
                return (
                    None,
                    f"no member's samples feed input '{tensor.name}': give the ensemble `samples:`",
                )
        rows = min(v.shape[0] for v in samples.values())
        return {k: v[:rows] for k, v in samples.items()}, f"from {', '.join(sorted(origin))}"

    def composed(self, ensemble: EnsembleSpec, kind: str) -> Reference | None:
        functions: dict[str, Reference] = {}
        for step in ensemble.steps:
            function = (
                getattr(self.built[step.model], kind, None) if step.model in self.built else None
            )
            if function is None:
                return None
            functions[step.model] = function

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            tensors = dict(feeds)
            pending = list(ensemble.steps)
            while pending:
                ready = [s for s in pending if all(e in tensors for e in s.inputs.values())]
                if not ready:
                    raise BuildError(f"ensemble '{ensemble.name}': steps cannot be ordered")
                for step in ready:
                    out = functions[step.model]({m: tensors[e] for m, e in step.inputs.items()})
                    for m, e in step.outputs.items():
                        tensors[e] = out[m]
                    pending.remove(step)
            return {t.name: tensors[t.name] for t in ensemble.outputs}

        return run

    # -- all of it -----------------------------------------------------------------------------
    def order(self) -> list[ModelSpec]:
        """Models in dependency order (a TensorRT model after its ONNX source)."""
        ordered, placed = [], set()
        pending = [m for m in self.spec.models if m.name in self.names]
        while pending:
            for model in list(pending):
                if model.onnx_from is None or model.onnx_from in placed:
                    ordered.append(model)
                    placed.add(model.name)
                    pending.remove(model)
        return ordered

    def run(self) -> list[StepResult]:
        models = self.order()
        ensembles = [e for e in self.spec.ensembles if e.name in self.names]
        jobs: list[tuple[str, Callable[[], StepResult]]] = []
        for model in models:
            jobs.append((model.name, partial(self.build_model, model)))
        for ensemble in ensembles:
            jobs.append((ensemble.name, partial(self.build_ensemble, ensemble)))
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=not self.console.is_terminal,
        ) as progress:
            task = progress.add_task("recipes", total=len(jobs) + 1)
            self.run_recipes()
            progress.advance(task)
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

    def keep_previous(self, names: list[str]) -> None:
        """Models not rebuilt (``--only``) come from the current repository, unchanged."""
        for name in names:
            source = self.previous / name
            if not (source / "config.pbtxt").is_file():
                raise BuildError(
                    f"model '{name}' is not built in {self.previous} yet: build without --only first"
                )
            shutil.copytree(source, self.staged / name, symlinks=True)
        with contextlib.suppress(ManifestError):
            previous = read_manifest(self.previous)
            for companion, entry in (previous.models if previous else {}).items():
                if entry.companion_of in names and (self.previous / companion).is_dir():
                    shutil.copytree(
                        self.previous / companion, self.staged / companion, symlinks=True
                    )


def _relative_source(source: str) -> str:
    """What the manifest records of a source: the spec's reference, never an absolute path."""
    return Path(source).name if Path(source).is_absolute() else source


def _manifest(
    spec: BuildSpec,
    staged: Path,
    build: _Build,
    previous: dict[str, ModelEntry],
    fingerprint: str,
) -> Manifest:
    models: dict[str, ModelEntry] = {}
    by_name = {r.model: r for r in build.results}
    entries: list[ModelSpec | EnsembleSpec] = [*spec.models, *spec.ensembles]
    frameworks = _framework_versions()
    for entry in entries:
        directory = staged / entry.name
        if not directory.exists():
            continue
        result = by_name.get(entry.name)
        if result is None and entry.name in previous:  # kept from the previous build
            models[entry.name] = previous[entry.name].model_copy(
                update={"files": digests(staged, entry.name)}
            )
            continue
        built = build.built.get(entry.name)
        models[entry.name] = ModelEntry(
            version=entry.version,
            backend=getattr(entry, "backend", "ensemble"),
            source=_relative_source(built.source) if built else "",
            source_sha256=built.source_sha256 if built else "",
            format=built.format if built else "",
            converter=result.step if result else "",
            status=result.status if result else "OK",
            detail=result.detail if result else "",
            parity=Parity.model_validate(result.parity) if result and result.parity else None,
            samples=result.samples if result else "",
            tolerance=Tolerance(atol=entry.tolerance.atol, rtol=entry.tolerance.rtol),
            metrics=result.metrics if result else {},
            frameworks=frameworks,
            files=digests(staged, entry.name),
        )
    for name, built in build.built.items():  # models converters wrote beside their owner
        owner = by_name.get(built.companion_of)
        if not built.companion_of or owner is None or not (staged / name).exists():
            continue
        models[name] = ModelEntry(
            version=spec.model(built.companion_of).version,
            backend=built.config.backend or built.config.platform,
            companion_of=built.companion_of,
            source=_relative_source(built.source),
            status=owner.status,
            frameworks=frameworks,
            files=digests(staged, name),
        )
    for name, kept in previous.items():  # companions of models kept from the last build
        if kept.companion_of in previous and name not in models and (staged / name).exists():
            models[name] = kept.model_copy(update={"files": digests(staged, name)})
    model_dirs = set(models)
    root_files = {k: v for k, v in digests(staged).items() if k.split("/", 1)[0] not in model_dirs}
    return Manifest(
        spec=spec.path.name if spec.path else None,
        spec_fingerprint=spec.fingerprint(),
        inputs_fingerprint=fingerprint,
        seed=spec.seed,
        target={"triton": "24.10", "server": "2.51.0"},
        frameworks=frameworks,
        models=models,
        files=root_files,
    )


def build_repository(
    spec: BuildSpec,
    out: Path,
    *,
    only: set[str] | None = None,
    force: bool = False,
    allow_failed: bool = False,
    console: Console | None = None,
) -> BuildReport:
    """Build ``spec`` into ``out`` (see the module docstring). Raises ``BuildError`` on problems
    found before building; returns a report whose ``failed`` steps left ``out`` untouched
    (unless ``allow_failed``)."""
    console = console or Console(stderr=True)
    out = Path(out).absolute()
    all_names = {m.name for m in spec.models} | {e.name for e in spec.ensembles}
    if only:
        unknown = sorted(set(only) - all_names)
        if unknown:
            raise BuildError(
                f"--only names unknown model(s) {unknown}; the spec has {sorted(all_names)}"
            )
        names = _closure(spec, set(only))
    else:
        names = all_names
    resolved = preflight(spec, out, names)
    # A partial build records no fingerprint: the next full build rebuilds everything.
    fingerprint = "" if only else _inputs_fingerprint(spec, resolved)
    if not force and only is None and _up_to_date(out, fingerprint):
        return BuildReport(out, [], up_to_date=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_work(out)
    work = out.parent / f".{out.name}{_WORK_PREFIX}{os.getpid()}"
    staged, recipes_dir = work / "repository", work / "recipes"
    with _terminate_as_interrupt():
        try:
            staged.mkdir(parents=True)
            recipes_dir.mkdir()
            build = _Build(spec, staged, recipes_dir, resolved, names, out, console)
            previous_manifest: dict[str, ModelEntry] = {}
            if only:
                build.keep_previous(sorted(all_names - names))
                with contextlib.suppress(ManifestError):
                    previous = read_manifest(out)
                    previous_manifest = previous.models if previous else {}
            results = build.run()
            if build.context_plans:
                from triton_deploy.build.onnx2trt import build_plans_script

                script = staged / PLANS_SCRIPT
                script.write_text(build_plans_script(build.context_plans))
                script.chmod(0o755)
            elif only and (out / PLANS_SCRIPT).is_file():
                shutil.copy2(out / PLANS_SCRIPT, staged / PLANS_SCRIPT)
            # Last, atomically: a repository with a manifest is a finished one.
            write_manifest(staged, _manifest(spec, staged, build, previous_manifest, fingerprint))
            report = BuildReport(out, results)
            if report.failed and not allow_failed:
                return report
            _swap_in(staged, out, work / "previous")
            report.swapped = True
            return report
        except Exception as exc:  # disk full, permission denied, out of file descriptors, ...
            error = resource_error(exc, where=out.parent)
            if error is None:
                raise
            raise ResourceError(
                f"{error} ({out} is left as it was)", path=error.path, errno=error.errno
            ) from None
        finally:
            _remove_tree(work)
