"""Hugging Face model folders (``save_pretrained`` output) → one ensemble: strings in.

The reader (``read_hf_folder``) loads the folder with transformers, offline (no hub): its
config, weights (safetensors first) and fast tokenizer. The task is the spec's ``task:`` or
follows ``config.json``'s architectures (``…ForSequenceClassification`` is text-classification;
anything else is feature-extraction). The reference runs the folder end to end in-process:
``tokenizer(texts, padding=True, truncation=True)`` → model → outputs.

The converter (``HfToEnsemble``) writes, for a model named ``m``:

    m_tokenizer   python       text BYTES [1] → input_ids, attention_mask[, token_type_ids] INT64 [-1]
                               (the folder's tokenizer.json run by the vendored `tokenizers`)
    m_model       onnxruntime  the transformer exported to ONNX with dynamic batch and
                               sequence axes → logits [labels] | embedding [hidden]
    m_labels      python       logits → probabilities [labels], label BYTES [1] (id2label)
                               (text-classification only)
    m             ensemble     text → logits, probabilities, label | embedding

``embedding`` (feature-extraction) is the mean of the last hidden states over the attention
mask: per-token states depend on how a batch was padded, a pooled vector does not.

**The tokenizer's dependencies reach the container.** Triton 24.10's Python backend runs
Python 3.10 and has no ``tokenizers``. The build copies the installed ``tokenizers`` package
into ``m_tokenizer/<version>/vendor/``, after checking that it came from an abi3 wheel for
CPython ≤ 3.10 (``tokenizers`` publishes only abi3 wheels: one build serves 3.10 and 3.11)
on manylinux x86_64; the model puts ``vendor/`` first on ``sys.path`` and logs the copy it
imported. Nothing is downloaded at build or serve time.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from triton_deploy.build.artifacts import Artifact, Tensor, quiet_frameworks
from triton_deploy.build.formats import Format
from triton_deploy.build.onnx_edits import rename_tensors
from triton_deploy.build.spec import EnsembleSpec, EnsembleStep, ModelSpec, TensorSpec
from triton_deploy.errors import ArtifactError

__all__ = [
    "TASKS",
    "read_hf_folder",
    "vendor_tokenizers",
]

TASKS = ("text-classification", "feature-extraction")
#: The Python of Triton 24.10's Python backend (NGC container); vendored code must import there.
CONTAINER_PYTHON = (3, 10)
TEXT = "text"


def _task(config: Any, declared: str | None) -> str:
    if declared is not None:
        return declared
    architectures = list(getattr(config, "architectures", None) or [])
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "text-classification"
    return "feature-extraction"


def _load(path: Path, task: str) -> tuple[Any, Any, Any]:
    try:
        import transformers
    except ImportError:
        raise ArtifactError(
            f"{path}: reading a Hugging Face folder needs transformers: "
            "pip install 'triton-deploy[build]'"
        ) from None
    try:
        with quiet_frameworks():
            config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, use_fast=True
            )
            cls = (
                transformers.AutoModelForSequenceClassification
                if task == "text-classification"
                else transformers.AutoModel
            )
            model = cls.from_pretrained(str(path), local_files_only=True).eval()
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"{path}: transformers cannot load the folder offline ({first}); it must hold what "
            "model.save_pretrained(folder) and tokenizer.save_pretrained(folder) write"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ArtifactError(
            f"{path}: the tokenizer has no fast (Rust) version, which the served tokenizer "
            "model runs: save a tokenizer.json (PreTrainedTokenizerFast.save_pretrained)"
        )
    return config, tokenizer, model


def _max_length(tokenizer: Any, config: Any) -> int:
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < 10**9 else []
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    return min(limits) if limits else 512


def _texts(feeds: dict[str, np.ndarray]) -> list[str]:
    values = np.asarray(feeds[TEXT]).reshape(-1)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def read_hf_folder(path: Path, model: ModelSpec) -> Artifact:
    """The folder as one model: text BYTES in, the task's outputs out (see the docstring)."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: config.json does not load ({exc})") from None
    task = _task(config, model.task)
    config, tokenizer, module = _load(path, task)
    if model.max_batch_size < 1:
        raise ArtifactError(f"{path}: a Hugging Face ensemble batches: set max_batch_size >= 1")
    max_length = _max_length(tokenizer, config)
    takes = _model_inputs(module, tokenizer)
    inputs = [Tensor(TEXT, "BYTES", (-1, 1))]
    if task == "text-classification":
        labels = _labels(path, config)
        outputs = [
            Tensor("logits", "FP32", (-1, len(labels))),
            Tensor("probabilities", "FP32", (-1, len(labels))),
            Tensor("label", "BYTES", (-1, 1)),
        ]
    else:
        labels = []
        outputs = [Tensor("embedding", "FP32", (-1, int(config.hidden_size)))]

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        encoded = tokenizer(
            _texts(feeds), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.no_grad():
            result = module(**{k: encoded[k] for k in takes})
        if task == "text-classification":
            logits = result.logits.float()
            probabilities = torch.softmax(logits, dim=1)
            index = logits.argmax(dim=1).tolist()
            names = np.array([[labels[i].encode()] for i in index], dtype=object)
            return {
                "logits": logits.numpy(),
                "probabilities": probabilities.numpy(),
                "label": names,
            }
        return {
            "embedding": _mean_pool(result.last_hidden_state, encoded["attention_mask"]).numpy()
        }

    info = {
        "task": task,
        "config": config,
        "tokenizer": tokenizer,
        "module": module,
        "labels": labels,
        "takes": takes,
        "max_length": max_length,
    }
    return Artifact(Format.HUGGINGFACE, path, inputs, outputs, reference, info)


def _mean_pool(hidden: Any, mask: Any) -> Any:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def _labels(path: Path, config: Any) -> list[str]:
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    count = int(getattr(config, "num_labels", len(id2label)) or len(id2label))
    if sorted(id2label) != list(range(count)):
        raise ArtifactError(
            f"{path}: config.json's id2label {id2label} does not name labels 0..{count - 1}"
        )
    return [id2label[i] for i in range(count)]


def _model_inputs(module: Any, tokenizer: Any) -> list[str]:
    """The tokenizer outputs the model's forward() takes, in a fixed order."""
    import inspect

    parameters = inspect.signature(module.forward).parameters
    wanted = ["input_ids", "attention_mask", "token_type_ids"]
    given = set(tokenizer.model_input_names)
    return [n for n in wanted if n in parameters and (n in given or n == "attention_mask")]


# -- vendoring ---------------------------------------------------------------------------------
def _wheel_tags(distribution: importlib.metadata.Distribution) -> list[str]:
    text = distribution.read_text("WHEEL") or ""
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]


def _fits_container(tag: str) -> bool:
    python, abi, platform = tag.split("-", 2)
    major, minor = CONTAINER_PYTHON
    if abi == "abi3":
        version = python.removeprefix("cp")
        return version.isdigit() and (int(version[0]), int(version[1:] or 0)) <= (major, minor)
    return python == f"cp{major}{minor}" and "x86_64" in platform


def vendor_tokenizers(destination: Path) -> str:
    """Copy the installed ``tokenizers`` package into ``destination`` (its ``vendor/``
    folder); the wheel must import on the container's Python. Returns a description."""
    try:
        distribution = importlib.metadata.distribution("tokenizers")
    except importlib.metadata.PackageNotFoundError:
        raise ArtifactError(
            "the tokenizer model needs the `tokenizers` package to vendor: "
            "pip install 'triton-deploy[build]'"
        ) from None
    tags = _wheel_tags(distribution)
    fitting = [t for t in tags if _fits_container(t)]
    platform_ok = any("manylinux" in t and "x86_64" in t for t in tags)
    if not fitting or not platform_ok:
        raise ArtifactError(
            f"tokenizers {distribution.version} is installed from a wheel tagged {tags or '?'}, "
            f"which does not import on Triton 24.10's Python {CONTAINER_PYTHON[0]}."
            f"{CONTAINER_PYTHON[1]} (manylinux x86_64): install an abi3 wheel "
            "(pip install --only-binary tokenizers --force-reinstall 'tokenizers>=0.20')"
        )
    root = Path(str(distribution.locate_file("tokenizers")))
    if not (root / "__init__.py").is_file():
        raise ArtifactError(f"tokenizers {distribution.version}: package files not found at {root}")
    shutil.copytree(
        root, destination / "tokenizers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    info = destination / f"tokenizers-{distribution.version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    for name in ("WHEEL", "METADATA", "LICENSE"):
        text = distribution.read_text(name)
        if text is not None:
            (info / name).write_text(text)
    return f"tokenizers {distribution.version} vendored ({', '.join(fitting)})"


# -- the converter -----------------------------------------------------------------------------
def _template(name: str) -> bytes:
    return resources.files("triton_deploy.build").joinpath(name).read_bytes()


class _Wrapped:
    """The transformer as ONNX exports it: tokens in, logits or a pooled embedding out."""

    @staticmethod
    def module(artifact: Artifact) -> Any:
        import torch

        inner, task, takes = artifact.info["module"], artifact.info["task"], artifact.info["takes"]

        class Exported(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(
                self,
                input_ids: torch.Tensor,
                attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None,
            ) -> torch.Tensor:
                given = {
                    "input_ids": input_ids,
                    "attention_mask": attention_mask,
                    "token_type_ids": token_type_ids,
                }
                named = {k: given[k] for k in takes}
                result = self.inner(**named)
                if task == "text-classification":
                    return result.logits
                return _mean_pool(result.last_hidden_state, named["attention_mask"])

        return Exported().eval()


def export_transformer(artifact: Artifact, path: Path, *, opset: int) -> list[str]:
    """The folder's model as ONNX with dynamic batch and sequence axes; its output names."""
    import onnx
    import torch

    takes = artifact.info["takes"]
    output = "logits" if artifact.info["task"] == "text-classification" else "embedding"
    wrapped = _Wrapped.module(artifact)
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in takes)
    batch = torch.export.Dim("batch", min=1)
    sequence = torch.export.Dim("sequence", min=2, max=int(artifact.info["max_length"]))
    dynamic = {name: {0: batch, 1: sequence} for name in takes}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet_frameworks():
            program = torch.export.export(wrapped, example, dynamic_shapes=dynamic, strict=False)
            exported = torch.onnx.export(
                program, (), input_names=list(takes), opset_version=opset, dynamo=True
            )
        assert exported is not None
        graph = exported.model_proto
        produced = graph.graph.output[0].name
        if produced != output:
            # an inner value may already carry the name: move it aside first (SSA form)
            graph = rename_tensors(graph, {output: f"{output}__inner"})
            graph = rename_tensors(graph, {produced: output})
        onnx.save_model(graph, str(path))
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"{artifact.path}: exporting the transformer to ONNX fails: {type(exc).__name__}: "
            f"{first}"
        ) from None
    return [output]


def companion_specs(model: ModelSpec, artifact: Artifact) -> tuple[list[ModelSpec], EnsembleSpec]:
    """The models written beside the ensemble, as spec entries, and the ensemble itself."""
    name, task, takes = model.name, artifact.info["task"], artifact.info["takes"]
    batching = {
        "max_batch_size": model.max_batch_size,
        "dynamic_batching": model.dynamic_batching,
        "instance_group": model.instance_group,
    }
    tokens = [TensorSpec(name=t, dtype="INT64", dims=[-1]) for t in takes]
    text = [TensorSpec(name=TEXT, dtype="BYTES", dims=[1])]
    tokenizer = ModelSpec(
        name=f"{name}_tokenizer",
        backend="python",
        python_model="model.py",
        inputs=text,
        outputs=tokens,
        **batching,
    )
    if task == "text-classification":
        width = len(artifact.info["labels"])
        outputs = [TensorSpec(name="logits", dtype="FP32", dims=[width])]
        finals = [
            *outputs,
            TensorSpec(name="probabilities", dtype="FP32", dims=[width]),
            TensorSpec(name="label", dtype="BYTES", dims=[1]),
        ]
    else:
        outputs = [
            TensorSpec(
                name="embedding", dtype="FP32", dims=[int(artifact.info["config"].hidden_size)]
            )
        ]
        finals = outputs
    transformer = ModelSpec(
        name=f"{name}_model",
        backend="onnxruntime",
        source="model.onnx",
        inputs=tokens,
        outputs=outputs,
        opset=model.opset,
        **batching,
    )
    members = [tokenizer, transformer]
    steps = [
        EnsembleStep(model=tokenizer.name, inputs={TEXT: TEXT}, outputs={t: t for t in takes}),
        EnsembleStep(
            model=transformer.name,
            inputs={t: t for t in takes},
            outputs={o.name: o.name for o in outputs},
        ),
    ]
    if task == "text-classification":
        labeler = ModelSpec(
            name=f"{name}_labels",
            backend="python",
            python_model="model.py",
            inputs=[finals[0]],
            outputs=finals[1:],
            **batching,
        )
        members.append(labeler)
        steps.append(
            EnsembleStep(
                model=labeler.name,
                inputs={"logits": "logits"},
                outputs={"probabilities": "probabilities", "label": "label"},
            )
        )
    ensemble = EnsembleSpec(
        name=name,
        version=model.version,
        max_batch_size=model.max_batch_size,
        inputs=text,
        outputs=finals,
        steps=steps,
        tolerance=model.tolerance,
    )
    return members, ensemble


def write_tokenizer(artifact: Artifact, version_dir: Path) -> str:
    """The tokenizer model's folder: model.py, tokenizer.json, its settings, vendor/."""
    tokenizer = artifact.info["tokenizer"]
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "model.py").write_bytes(_template("hf_tokenizer_model.py"))
    tokenizer.backend_tokenizer.save(str(version_dir / "tokenizer.json"))
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ArtifactError(
            f"{artifact.path}: the tokenizer has no pad token, so a batch of texts cannot be "
            "padded: set tokenizer.pad_token (e.g. to eos_token) and save it again"
        )
    settings = {
        "text_input": TEXT,
        "outputs": list(artifact.info["takes"]),
        "max_length": int(artifact.info["max_length"]),
        "pad_id": int(pad_id),
        "pad_token": str(tokenizer.pad_token),
        "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        "padding_side": str(tokenizer.padding_side),
        "truncation_side": str(getattr(tokenizer, "truncation_side", "right")),
    }
    (version_dir / "tokenizer_settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    return vendor_tokenizers(version_dir / "vendor")


def write_labels(artifact: Artifact, version_dir: Path) -> None:
    version_dir.mkdir(parents=True, exist_ok=True)
    (version_dir / "model.py").write_bytes(_template("hf_labels_model.py"))
    (version_dir / "labels.json").write_text(json.dumps(artifact.info["labels"]) + "\n")
