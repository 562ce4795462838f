"""Model file formats: what a file is, from its name and its first bytes.

``detect_format`` reads the extension and sniffs the content, so a mislabelled file is caught
before any framework parses it: ``model.onnx`` that holds a TorchScript archive, a PyTorch
``state_dict`` saved as ``.pt``, a LightGBM text model named ``.json``, a truncated download.
Every problem is an ``ArtifactError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import zipfile
from enum import StrEnum
from pathlib import Path

from triton_deploy.errors import ArtifactError

__all__ = ["EXTENSIONS", "Format", "detect_format", "sniff"]


class Format(StrEnum):
    """A model file format a spec's ``source:`` may name (``format:`` overrides detection)."""

    ONNX = "onnx"
    TORCH_EXPORT = "torch_export"  # torch.export.save (.pt2)
    TORCHSCRIPT = "torchscript"  # torch.jit.save (.pt, .ts)
    XGBOOST_JSON = "xgboost_json"
    XGBOOST_UBJ = "xgboost_ubj"
    LIGHTGBM = "lightgbm"  # LightGBM text model
    HUGGINGFACE = "huggingface"  # a save_pretrained folder: config.json, weights, tokenizer
    SKLEARN_SKOPS = "sklearn_skops"  # skops.io.dump: a scikit-learn estimator, no pickle
    SKLEARN_PICKLE = "sklearn_pickle"  # joblib.dump / pickle.dump: read only when trusted

    @property
    def family(self) -> str:
        """``torch``, ``onnx``, ``trees`` or ``huggingface``: which targets it can reach."""
        if self in (Format.TORCH_EXPORT, Format.TORCHSCRIPT):
            return "torch"
        if self is Format.ONNX:
            return "onnx"
        if self is Format.HUGGINGFACE:
            return "huggingface"
        if self in (Format.SKLEARN_SKOPS, Format.SKLEARN_PICKLE):
            return "sklearn"
        return "trees"


#: extension -> the format it announces (``.model``/``.bin`` are left to the content).
EXTENSIONS: dict[str, Format] = {
    ".onnx": Format.ONNX,
    ".pt2": Format.TORCH_EXPORT,
    ".pt": Format.TORCHSCRIPT,
    ".pth": Format.TORCHSCRIPT,
    ".ts": Format.TORCHSCRIPT,
    ".torchscript": Format.TORCHSCRIPT,
    ".json": Format.XGBOOST_JSON,
    ".ubj": Format.XGBOOST_UBJ,
    ".txt": Format.LIGHTGBM,
    ".lgb": Format.LIGHTGBM,
    ".lgbm": Format.LIGHTGBM,
    ".skops": Format.SKLEARN_SKOPS,
    ".joblib": Format.SKLEARN_PICKLE,
    ".pkl": Format.SKLEARN_PICKLE,
    ".pickle": Format.SKLEARN_PICKLE,
}
_AMBIGUOUS = {".model", ".bin"}
_ZIP = b"PK\x03\x04"
# UBJSON type markers that may follow the opening '{' of an XGBoost UBJ model.
_UBJ_MARKERS = frozenset(b"iUIlLdDSHCTFZN#$")


def _zip_kind(path: Path) -> tuple[Format | None, str]:
    """TorchScript and torch.export archives are both zip files; their entries tell them apart."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return None, "a damaged or truncated zip archive"
    entries = {name.split("/", 1)[-1] for name in names}
    if "schema.json" in names:
        return Format.SKLEARN_SKOPS, "a skops archive"
    if "archive_format" in entries or any(n.startswith("models/") for n in entries):
        return Format.TORCH_EXPORT, "a torch.export archive"
    if any(n.startswith("code/") for n in entries) and "constants.pkl" in entries:
        return Format.TORCHSCRIPT, "a TorchScript archive"
    if "data.pkl" in entries:
        return None, (
            "a pickled PyTorch object (torch.save of a state_dict or module), not a model file: "
            "save it with torch.export.save (.pt2) or torch.jit.save (TorchScript)"
        )
    return None, "a zip archive that is neither torch.export nor TorchScript"


def sniff(path: Path) -> tuple[Format | None, str]:
    """(format, description) from the content alone; format None when it is no model we read."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except IsADirectoryError:
        return _folder_kind(path)
    if not head:
        return None, "an empty file"
    if head.startswith(_ZIP):
        return _zip_kind(path)
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return Format.LIGHTGBM, "a LightGBM text model"
    if head[:1] == b"{":
        if len(head) > 1 and head[1] in _UBJ_MARKERS:
            return Format.XGBOOST_UBJ, "a UBJSON document"
        return _json_kind(path)
    if head.startswith(b"binf") or head[:4] == b"\x00\x00\x00\x3f":
        return None, (
            "XGBoost's legacy binary format, which current XGBoost and Triton's FIL backend no "
            "longer read: load it with the XGBoost that wrote it and save_model('model.json')"
        )
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return Format.SKLEARN_PICKLE, "a Python pickle"
    # An ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
    if head[:1] == b"\x08":
        return Format.ONNX, "an ONNX protobuf"
    return None, "not a model file this build reads"


#: Weight files a save_pretrained folder may hold (safetensors first: no pickle).
HF_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _folder_kind(path: Path) -> tuple[Format | None, str]:
    """A Hugging Face ``save_pretrained`` folder, or why the folder is not one."""
    if not (path / "config.json").is_file():
        return None, (
            "a directory without config.json, so not a Hugging Face model folder "
            "(model.save_pretrained(folder) and tokenizer.save_pretrained(folder) write one)"
        )
    if not any((path / name).is_file() for name in HF_WEIGHTS):
        return None, (
            f"a Hugging Face folder without weights (none of {', '.join(HF_WEIGHTS)}): save "
            "it with model.save_pretrained(folder)"
        )
    return Format.HUGGINGFACE, "a Hugging Face model folder"


def _json_kind(path: Path) -> tuple[Format | None, str]:
    try:
        document = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"JSON that does not parse ({exc}; truncated?)"
    if isinstance(document, dict) and "learner" in document:
        return Format.XGBOOST_JSON, "an XGBoost JSON model"
    if isinstance(document, dict) and "tree_info" in document:
        return None, (
            "a LightGBM JSON dump, which FIL cannot load: save the model as text "
            "(booster.save_model('model.txt'))"
        )
    return None, "a JSON document that is not an XGBoost model"


def detect_format(path: Path, declared: Format | str | None = None) -> Format:
    """The file's format: extension and content must agree, and agree with ``declared``."""
    if not path.exists():
        raise ArtifactError(f"{path}: file not found")
    found, description = sniff(path)
    if found is None:
        raise ArtifactError(f"{path}: {description}")
    if declared is not None:
        declared = Format(declared)
        if declared is not found:
            raise ArtifactError(
                f"{path}: format '{declared}' was declared, but the file is {description} "
                f"('{found}')"
            )
        return found
    if found is Format.HUGGINGFACE:
        return found
    suffix = path.suffix.lower()
    announced = EXTENSIONS.get(suffix)
    if announced is None and suffix not in _AMBIGUOUS:
        known = ", ".join(sorted(EXTENSIONS))
        raise ArtifactError(
            f"{path}: unknown extension '{suffix}' (known: {known}); set `format:` in the spec"
        )
    if announced is not None and announced is not found:
        raise ArtifactError(
            f"{path}: the extension '{suffix}' says {announced} but the file is {description}; "
            f"rename the file or set `format: {found}` in the spec"
        )
    return found
