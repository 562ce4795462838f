"""ONNX files as exporters write them: the graph, and weights in other files (external data).

torch 2.13's ``torch.onnx.export`` writes ``model.onnx`` *and* ``model.onnx.data`` by default;
models over 2 GB cannot be one file at all (protobuf's limit). An initializer stored outside
the graph names its file with a ``location`` relative to the ``.onnx``, plus an ``offset`` and
a ``length`` in it.

``external_data`` reads and checks every such reference without loading the weights: the
location is relative, stays inside the ``.onnx``'s folder (no ``../``, no symlink out), the
file exists and holds ``offset + length`` bytes. ``write_onnx`` puts a (possibly modified)
graph into a repository version folder the way Triton's onnxruntime backend (which opens the
file by path) and TensorRT's ONNX parser read it:

- **under 2 GB in all: inlined** into one self-contained ``model.onnx``. One file is what every
  consumer takes (tools that load ONNX from bytes included), and what the manifest digests and
  signs as one unit;
- **2 GB or more: copied alongside**: ``model.onnx`` holds the graph, the data files keep their
  names and relative locations beside it in the version folder, byte for byte (nothing is
  loaded into memory, so a 10 GB model costs a file copy).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triton_deploy.errors import ArtifactError

__all__ = [
    "INLINE_LIMIT",
    "ExternalData",
    "copy_onnx",
    "external_data",
    "graph_session",
    "load_graph",
    "write_onnx",
]

#: Graph plus weights below this are written as one file; protobuf cannot serialize 2 GiB.
INLINE_LIMIT = 2**31 - 2**26  # 2 GiB less 64 MiB of headroom for the graph itself


@dataclass
class ExternalData:
    """Where a graph's external weights live: files relative to the ``.onnx``'s folder."""

    folder: Path
    files: dict[str, int] = field(default_factory=dict)  # location -> bytes the graph uses
    tensors: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def describe(self) -> str:
        names = ", ".join(sorted(self.files))
        return f"{self.tensors} tensors in {names} ({self.total_bytes / 2**20:.1f} MiB)"


def _tensors(graph: Any) -> list[Any]:
    from onnx.external_data_helper import _get_all_tensors

    return list(_get_all_tensors(graph))


def external_data(path: Path, model: Any) -> ExternalData:
    """Every external reference of ``model`` (read from ``path``) checked; see the docstring."""
    import onnx

    folder = path.parent
    root = folder.resolve()
    found = ExternalData(folder)
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"{path}: initializer '{tensor.name}' keeps its data in '{location}'"
        if not location:
            raise ArtifactError(
                f"{path}: initializer '{tensor.name}' is external but names no file"
            )
        if os.path.isabs(location) or location.startswith(("/", "\\")):
            raise ArtifactError(
                f"{where}, an absolute path: ONNX external data must be relative to the .onnx; "
                "re-save with onnx.save_model(model, path, save_as_external_data=True, "
                "location='<file name>')"
            )
        target = folder / location
        try:
            inside = ".." not in Path(location).parts and target.resolve().is_relative_to(root)
        except OSError:
            inside = False
        if not inside:
            raise ArtifactError(
                f"{where}, outside the model's folder {folder}: keep the data files beside the "
                ".onnx (or below it) and re-save so that `location` has no '../'"
            )
        if not target.is_file():
            raise ArtifactError(
                f"{where}, which does not exist (looked for {target}): copy '{location}' beside "
                f"{path.name} — exporters such as torch.onnx.export write it next to the .onnx"
            )
        try:
            offset = int(info.get("offset", "0") or 0)
            length = int(info.get("length", "0") or 0)
        except ValueError:
            raise ArtifactError(f"{where} with a non-numeric offset or length") from None
        if length == 0:
            length = max(target.stat().st_size - offset, 0)
        size = target.stat().st_size
        if offset + length > size:
            raise ArtifactError(
                f"{where} at bytes {offset}..{offset + length}, but the file has {size} bytes: "
                f"it is truncated or belongs to another export; copy the matching '{location}'"
            )
        found.files[location] = found.files.get(location, 0) + length
        found.tensors += 1
    return found


def load_graph(path: Path) -> Any:
    """The ModelProto without its external weights (never over 2 GB in memory)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ArtifactError(f"{path}: not a readable ONNX model ({exc}); truncated?") from None


def write_onnx(model: Any, data: ExternalData, version_dir: Path, filename: str) -> Path:
    """``model`` (weights still external, read from ``data.folder``) into ``version_dir``."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    version_dir.mkdir(parents=True, exist_ok=True)
    path = version_dir / filename
    if not data.files or data.total_bytes + model.ByteSize() < INLINE_LIMIT:
        if data.files:
            model = _copy(model)
            load_external_data_for_model(model, str(data.folder))
        onnx.save_model(model, str(path))
        return path
    for location in data.files:
        if (version_dir / location).resolve() == path.resolve():
            raise ArtifactError(
                f"{data.folder / location}: an external data file may not be named {filename}"
            )
        target = version_dir / location
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data.folder / location, target)
    onnx.save_model(model, str(path))
    return path


def _copy(model: Any) -> Any:
    import onnx

    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    return copied


def copy_onnx(source: Path, version_dir: Path, filename: str = "model.onnx") -> Path:
    """An ONNX file and its external data into ``version_dir`` (see ``write_onnx``)."""
    model = load_graph(source)
    return write_onnx(model, external_data(source, model), version_dir, filename)


def graph_session(model: Any, data: ExternalData, options: Any) -> Any:
    """An onnxruntime session on an edited graph whose weights are still in ``data.folder``
    (onnxruntime reads external data relative to that folder; nothing is copied)."""
    import onnxruntime as ort

    options.add_session_config_entry(
        "session.model_external_initializers_file_folder_path", str(data.folder.resolve())
    )
    try:
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        message = str(exc).split(" : ", 2)[-1].strip().splitlines()[0]
        raise ArtifactError(
            f"{data.folder}: onnxruntime {ort.__version__} cannot load the edited graph: {message}"
        ) from None
