"""The declarative build spec (``models.yaml``), validated with pydantic.

A spec lists models, each made from one **source**: a model file of a known format (``source:``,
ONNX, torch.export ``.pt2``, TorchScript, XGBoost JSON/UBJ, LightGBM text), another model's
ONNX (``onnx_from:``, for TensorRT), or a Python model file (``python_model:``). A file may
also come from a **recipe**: a training function the build runs first, referenced as
``recipe:<recipe name>/<file it writes>``. Every relative path resolves against the spec
file's folder, so a build works from any working directory. What serves a model
(``backend:``) is inferred from the source's format unless given; impossible pairs (a tree model
on onnxruntime, a TorchScript file without declared tensors) are rejected when the spec loads.
A bad spec is a ``SpecError`` naming the file, the key and the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from triton_deploy.build.formats import EXTENSIONS, Format
from triton_deploy.errors import SpecError

__all__ = [
    "BACKEND_FOR_FAMILY",
    "BuildSpec",
    "DynamicBatching",
    "EnsembleSpec",
    "EnsembleStep",
    "FilOptions",
    "InstanceGroup",
    "ModelSpec",
    "RecipeOutput",
    "RecipeSpec",
    "TensorRTOptions",
    "TensorSpec",
    "Tolerance",
    "find_spec",
    "load_spec",
    "model_references",
    "parse_reference",
]

DataType = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Backend = Literal["onnxruntime", "tensorrt", "fil", "python"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=128)]
# Tensor names may hold dots: outputs flattened from a pytree are named like `hidden_states.0`.
TensorName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$", max_length=256)]
RECIPE_PREFIX = "recipe:"

#: Which backends a source format family can be served by (the first is the default).
BACKEND_FOR_FAMILY: dict[str, tuple[Backend, ...]] = {
    "onnx": ("onnxruntime", "tensorrt"),
    "torch": ("onnxruntime", "tensorrt"),
    "trees": ("fil",),
    # a Hugging Face folder becomes an ensemble: tokenizer (python) → transformer (onnxruntime)
    "huggingface": ("onnxruntime",),
    # scikit-learn: any estimator through skl2onnx; tree ensembles through FIL (init says so)
    "sklearn": ("onnxruntime", "fil"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """A tensor as config.pbtxt has it: without the batch dimension when max_batch_size > 0."""

    name: TensorName
    dtype: DataType
    dims: list[int] = Field(min_length=1)
    # The shape the model itself sees, when it differs from dims (e.g. [] for a tensor that is
    # only the batch axis: dims [1], reshape []).
    reshape: list[int] | None = None

    @field_validator("dims")
    @classmethod
    def _dims(cls, dims: list[int]) -> list[int]:
        if any(d == 0 or d < -1 for d in dims):
            raise ValueError("dims must be positive or -1 (variable)")
        return dims


class QueuePolicy(_Strict):
    """Overload gets fast rejections instead of unbounded latency."""

    max_queue_size: int = Field(256, ge=0)
    timeout_microseconds: int = Field(1_000_000, ge=0)
    allow_timeout_override: bool = True


class DynamicBatching(_Strict):
    enabled: bool = True
    preferred_batch_size: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    max_queue_delay_microseconds: int = Field(500, ge=0)
    preserve_ordering: bool = False
    # Off by default: with any default_queue_policy, Triton 2.51's dynamic batcher stalls
    # requests for ~500 ms under load (measured: `tdeploy bench --queue-policy`). Set it
    # where bounded queues matter more than tail latency.
    queue: QueuePolicy | None = None


class InstanceGroup(_Strict):
    kind: Literal["KIND_AUTO", "KIND_CPU", "KIND_GPU"] = "KIND_AUTO"
    count: int = Field(1, ge=1, le=64)
    gpus: list[int] = Field(default_factory=list)


class Tolerance(_Strict):
    """Parity of a converted/served model with its source framework: |a - b| <= atol + rtol*|b|."""

    atol: float = Field(1e-5, ge=0)
    rtol: float = Field(1e-5, ge=0)


class FilOptions(_Strict):
    """The FIL backend's parameters; unset ones are derived from the tree model itself."""

    # File format FIL reads; default: xgboost_json for XGBoost models (JSON or UBJ sources; the
    # file is rewritten in the layout Triton 24.10's FIL reads), lightgbm for LightGBM.
    model_type: Literal["xgboost_json", "lightgbm"] | None = None
    # Classifier or not; default: from the model's objective.
    output_class: bool | None = None
    # Class probabilities rather than the class index; default: true for classifiers.
    predict_proba: bool | None = None
    threshold: float = Field(0.5, ge=0, le=1)
    proba_width: Literal[1, 2] = 1  # binary predict_proba: [p] or [1-p, p]
    use_experimental_optimizations: bool = False


class TensorRTOptions(_Strict):
    precision: Literal["fp32", "fp16"] = "fp16"
    workspace_mib: int = Field(1024, ge=64)
    opt_batch_size: int | None = Field(None, gt=0)  # default: half of max_batch_size


class VersionPolicy(_Strict):
    policy: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = Field(1, ge=1)
    versions: list[int] = Field(default_factory=list)


@dataclass(frozen=True)
class RecipeOutput:
    """``recipe:<recipe>/<file>``: a file that a recipe of the spec writes."""

    recipe: str
    file: str

    def __str__(self) -> str:
        return f"{RECIPE_PREFIX}{self.recipe}/{self.file}"


def parse_reference(value: str) -> str | RecipeOutput:
    """A path (as written) or a recipe output."""
    if not value.startswith(RECIPE_PREFIX):
        return value
    recipe, sep, file = value[len(RECIPE_PREFIX) :].partition("/")
    if not sep or not recipe or not file or "/" in file or file in (".", ".."):
        raise ValueError(f"'{value}' must be 'recipe:<recipe name>/<file name>'")
    return RecipeOutput(recipe, file)


def _file_name(value: str) -> str:
    reference = parse_reference(value)
    return reference.file if isinstance(reference, RecipeOutput) else Path(reference).name


class RecipeSpec(_Strict):
    """A training function run before the build; its files feed models like any user file."""

    name: Name
    # "package.module:function" (importable) or "path/to/file.py:function" (relative to the spec).
    function: str
    # The files the function writes into the folder it is given; models reference them as
    # recipe:<name>/<file>.
    outputs: list[str] = Field(min_length=1)

    @field_validator("function")
    @classmethod
    def _function(cls, value: str) -> str:
        target, sep, function = value.rpartition(":")
        if not sep or not target or not function.isidentifier():
            raise ValueError(
                f"'{value}' must be 'package.module:function' or 'path/to/file.py:function'"
            )
        return value

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, outputs: list[str]) -> list[str]:
        for name in outputs:
            if "/" in name or "\\" in name or name in (".", "..") or not name:
                raise ValueError(f"output '{name}' must be a plain file name")
        return outputs


class ModelSpec(_Strict):
    name: Name
    # What serves the model; default: inferred from the source (onnxruntime for ONNX and
    # PyTorch files, fil for tree models, python for python_model, tensorrt for onnx_from).
    backend: Backend
    # Exactly one of these says where the model comes from:
    source: str | None = None  # a model file (path or recipe:<recipe>/<file>)
    onnx_from: Name | None = None  # tensorrt: the ONNX of this other model of the spec
    python_model: str | None = None  # python: a file defining TritonPythonModel
    format: Format | None = None  # source format; default: from the extension and content
    # Real inputs (.npz keyed by input name, or .npy for a single input): parity and golden cases.
    samples: str | None = None
    shared_code: list[str] = Field(default_factory=list)  # python: .py files copied beside model.py
    assets: list[str] = Field(default_factory=list)  # python: other files copied beside model.py
    version: int = Field(1, ge=1)
    version_policy: VersionPolicy = VersionPolicy()
    max_batch_size: int = Field(64, ge=0)
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)
    dynamic_batching: DynamicBatching = DynamicBatching()
    instance_group: list[InstanceGroup] = Field(default_factory=lambda: [InstanceGroup()])
    parameters: dict[str, str] = Field(default_factory=dict)
    tolerance: Tolerance = Tolerance()
    warmup: bool = True
    fil: FilOptions | None = None
    tensorrt: TensorRTOptions | None = None
    opset: int = Field(18, ge=18, le=21)  # PyTorch -> ONNX export (Triton 24.10 runs <= 21)
    # ONNX exported with a fixed batch dim (torch.onnx.export's default: 2): make the first dim
    # of every input and output dynamic; proven at batch 1 and 3 against the file itself.
    dynamic_batch: bool = False
    # Tensor names as clients see them, {name in the file: new name} (ONNX and torch sources);
    # declared `inputs:`/`outputs:` use the new names.
    rename: dict[str, TensorName] = Field(default_factory=dict)
    # torch.export: modules imported before loading the file, for the pytree types its outputs
    # use (e.g. [transformers] for Hugging Face ModelOutput classes).
    pre_import: list[str] = Field(default_factory=list)
    # Hugging Face folders: what the served ensemble does; default from config.json's
    # architectures (…ForSequenceClassification: text-classification).
    task: Literal["text-classification", "feature-extraction"] | None = None
    # scikit-learn: a .joblib/.pkl is a pickle, which runs code from the file when loaded:
    # read only when this is true. skops files: types beyond skops' trusted defaults.
    trust_pickle: bool = False
    trusted_types: list[str] = Field(default_factory=list)
    # XGBoost/LightGBM categorical features: clients send category codes (FIL's input; the
    # names are written to categories.json), or the category strings themselves (a generated
    # preprocessing model and an ensemble in front of FIL).
    categorical: Literal["codes", "strings"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_backend(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("backend") is not None:
            return data
        data = dict(data)
        if data.get("python_model") is not None:
            data["backend"] = "python"
        elif data.get("onnx_from") is not None:
            data["backend"] = "tensorrt"
        elif isinstance(data.get("source"), str):
            family = _source_family(data["source"], data.get("format"))
            if family is None:
                raise ValueError(
                    f"cannot tell the format of source '{data['source']}' from its extension: "
                    "set `format:` (or `backend:`)"
                )
            data["backend"] = BACKEND_FOR_FAMILY[family][0]
        else:
            raise ValueError(
                "give one of `source:` (a model file), `onnx_from:` or `python_model:`"
            )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        given = [k for k in ("source", "onnx_from", "python_model") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of `source:`, `onnx_from:`, `python_model:` (got {given or 'none'})"
            )
        for key in ("source", "samples", "python_model", *("shared_code", "assets")):
            values = getattr(self, key)
            for value in values if isinstance(values, list) else [values]:
                if value is not None:
                    parse_reference(value)
        if self.backend == "python":
            if self.python_model is None:
                raise ValueError("backend 'python' needs `python_model:` (a .py file)")
            if not (self.inputs and self.outputs):
                raise ValueError(
                    "backend 'python' needs `inputs:` and `outputs:` (they cannot be read from a .py file)"
                )
            if not _file_name(self.python_model).endswith(".py"):
                raise ValueError(f"python_model '{self.python_model}' must be a .py file")
            for code in self.shared_code:
                if not _file_name(code).endswith(".py"):
                    raise ValueError(f"shared_code '{code}' must be a .py file")
        elif self.shared_code or self.assets:
            raise ValueError("`shared_code:` and `assets:` are for backend 'python' only")
        if self.backend == "tensorrt" and self.onnx_from is None and self.source is None:
            raise ValueError("backend 'tensorrt' needs `onnx_from:` (another model) or `source:`")
        if self.onnx_from is not None and self.backend != "tensorrt":
            raise ValueError("`onnx_from:` is for backend 'tensorrt' only")
        if self.source is not None:
            family = _source_family(self.source, self.format)
            if family is not None and self.backend not in BACKEND_FOR_FAMILY[family]:
                allowed = " or ".join(BACKEND_FOR_FAMILY[family])
                raise ValueError(
                    f"a {family} source ('{self.source}') cannot be served by backend "
                    f"'{self.backend}' (use {allowed})"
                )
            is_torchscript = self.format is Format.TORCHSCRIPT or (
                self.format is None
                and EXTENSIONS.get(Path(_file_name(self.source)).suffix.lower())
                is Format.TORCHSCRIPT
            )
            if is_torchscript and not (self.inputs and self.outputs):
                raise ValueError(
                    "a TorchScript file carries no tensor names, dtypes or shapes: declare "
                    "`inputs:` and `outputs:` (name, dtype, dims without the batch dimension), "
                    "in the order of forward()'s arguments and results"
                )
        if self.backend != "fil" and self.fil is not None:
            raise ValueError("'fil' options given for a model whose backend is not 'fil'")
        if self.backend != "tensorrt" and self.tensorrt is not None:
            raise ValueError("'tensorrt' options given for a model whose backend is not 'tensorrt'")
        if self.backend == "tensorrt" and self.max_batch_size < 1:
            raise ValueError("TensorRT plans are built for batching models (max_batch_size >= 1)")
        too_big = [b for b in self.dynamic_batching.preferred_batch_size if b > self.max_batch_size]
        if too_big:
            raise ValueError(
                f"preferred_batch_size {too_big} exceeds max_batch_size {self.max_batch_size}"
            )
        return self


def _source_family(source: str, fmt: Any) -> str | None:
    if fmt is not None:
        try:
            return Format(fmt).family
        except ValueError:
            return None  # the format field's own validation reports it
    name = _file_name(source)
    if source.endswith(("/", "\\")) or not Path(name).suffix:  # a folder: save_pretrained
        return "huggingface"
    announced = EXTENSIONS.get(Path(name).suffix.lower())
    return announced.family if announced is not None else None


class EnsembleStep(_Strict):
    model: Name
    model_version: int = -1
    # model tensor name -> ensemble tensor name
    inputs: dict[str, Name]
    outputs: dict[str, Name]


class EnsembleSpec(_Strict):
    name: Name
    version: int = Field(1, ge=1)
    max_batch_size: int = Field(64, ge=0)
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    steps: list[EnsembleStep] = Field(min_length=1)
    # Real inputs for the golden cases; default: taken from the members' samples.
    samples: str | None = None
    tolerance: Tolerance = Tolerance()

    @field_validator("samples")
    @classmethod
    def _samples(cls, value: str | None) -> str | None:
        if value is not None:
            parse_reference(value)
        return value


class BuildSpec(_Strict):
    seed: int = 0
    recipes: list[RecipeSpec] = Field(default_factory=list)
    models: list[ModelSpec] = Field(min_length=1)
    ensembles: list[EnsembleSpec] = Field(default_factory=list)
    # The folder relative paths resolve against: the spec file's folder (set by load_spec).
    _base: Path = PrivateAttr(default_factory=Path.cwd)
    _path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _names(self) -> BuildSpec:
        names = [m.name for m in self.models] + [e.name for e in self.ensembles]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {dupes}")
        recipe_names = [r.name for r in self.recipes]
        dupes = sorted({n for n in recipe_names if recipe_names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate recipe names: {dupes}")
        recipes = {r.name: r for r in self.recipes}
        by_name = {m.name: m for m in self.models}
        for model in self.models:
            for key, value in model_references(model):
                reference = parse_reference(value)
                if isinstance(reference, RecipeOutput):
                    recipe = recipes.get(reference.recipe)
                    if recipe is None:
                        raise ValueError(
                            f"model '{model.name}': {key} '{value}' names recipe "
                            f"'{reference.recipe}', which is not in `recipes:` "
                            f"(there: {sorted(recipes) or 'none'})"
                        )
                    if reference.file not in recipe.outputs:
                        raise ValueError(
                            f"model '{model.name}': {key} '{value}': recipe '{recipe.name}' does "
                            f"not list '{reference.file}' in its outputs {recipe.outputs}"
                        )
            if model.onnx_from is not None:
                source = by_name.get(model.onnx_from)
                if source is None or source.backend != "onnxruntime":
                    raise ValueError(
                        f"model '{model.name}': onnx_from '{model.onnx_from}' is not an onnxruntime model of this spec"
                    )
        for ensemble in self.ensembles:
            for step in ensemble.steps:
                if step.model not in by_name:
                    raise ValueError(
                        f"ensemble '{ensemble.name}': step model '{step.model}' is not declared in models"
                    )
        return self

    # -- paths ----------------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        """The folder the spec's relative paths resolve against."""
        return self._base

    @property
    def path(self) -> Path | None:
        return self._path

    def located(self, path: Path | None, base: Path) -> BuildSpec:
        self._path = path
        self._base = base.resolve()
        return self

    def resolve_path(self, value: str) -> Path:
        """A path of the spec (not a recipe output) as an absolute path."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self._base / path)

    def recipe(self, name: str) -> RecipeSpec:
        return next(r for r in self.recipes if r.name == name)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.model_dump_json().encode())
        digest.update(str(self._base).encode())
        return digest.hexdigest()


def model_references(model: ModelSpec) -> list[tuple[str, str]]:
    """(key, value) of every file reference of a model."""
    found = [
        (key, value)
        for key in ("source", "samples", "python_model")
        if (value := getattr(model, key)) is not None
    ]
    found += [("shared_code", value) for value in model.shared_code]
    found += [("assets", value) for value in model.assets]
    return found


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """'models[2] (digits_cnn).max_batch_size' from a pydantic error location."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and "name" in node:
                    label += f" ({node['name']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


SPEC_CANDIDATES = (Path("models.yaml"), Path("build") / "models.yaml")


def find_spec(given: Path | None) -> Path:
    """The spec to use: ``given``, else ./models.yaml, else ./build/models.yaml."""
    if given is not None:
        return Path(given)
    for candidate in SPEC_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise SpecError(
        f"no build spec here ({' or '.join(str(c) for c in SPEC_CANDIDATES)} in {Path.cwd()}): "
        "pass --spec, or write one with `tdeploy init MODEL_FILE...`"
    )


def load_spec(path: Path) -> BuildSpec:
    """Read and validate a spec file; every problem is reported with file, key and reason."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a spec file") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); "
            "save the spec as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a mapping with 'models' (and 'ensembles')")
    try:
        spec = BuildSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {_location(tuple(err['loc']), data)}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors(include_url=False)
        ]
        raise SpecError("invalid build spec:\n" + "\n".join(problems)) from None
    return spec.located(path.resolve(), path.resolve().parent)
