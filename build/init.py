"""``tdeploy init``: a commented build spec for model files, with what they tell about themselves.

Each file becomes one model entry: its format and backend, its tensors as read from the file
(written as comments that show the syntax to override them), batching defaults that fit the
model (dynamic batching when the file has a dynamic batch axis), and ``samples:`` when a
``<stem>.npz``/``.npy`` (or ``<stem>_samples.*``) lies beside it. A TorchScript file carries no
tensor metadata, so its entry says which keys to fill in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from triton_deploy.build.artifacts import Artifact, Tensor, config_tensors, read_artifact
from triton_deploy.build.formats import Format, detect_format
from triton_deploy.build.samples import load_samples
from triton_deploy.build.spec import BACKEND_FOR_FAMILY, ModelSpec
from triton_deploy.errors import ArtifactError, SpecError

__all__ = ["InitEntry", "init_spec", "write_spec"]

_DEFAULTS = {  # family -> (max_batch_size, max_queue_delay_microseconds)
    "onnx": (64, 500),
    "torch": (64, 500),
    "trees": (256, 1000),
    "sklearn": (256, 1000),
    "huggingface": (32, 2000),
}


@dataclass
class InitEntry:
    name: str
    text: str
    note: str = ""


def _model_name(path: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_\-]", "_", path.stem) or "model"
    if not base[0].isalpha():
        base = f"model_{base}"
    name, index = base, 2
    while name in taken:
        name, index = f"{base}_{index}", index + 1
    taken.add(name)
    return name


def _samples_beside(path: Path) -> Path | None:
    suffixes = (".txt",) if path.is_dir() else (".npz", ".npy")  # folders: texts, one a line
    for stem in (path.stem, f"{path.stem}_samples", f"{path.stem}.samples"):
        for suffix in suffixes:
            candidate = path.with_name(stem + suffix)
            if candidate.is_file() and candidate != path:
                return candidate
    return None


def _tensor_lines(kind: str, tensors: list[Tensor], max_batch_size: int) -> list[str]:
    lines = [
        f"    # {kind} (read from the file; uncomment to override or to rename):",
        f"    # {kind}:",
    ]
    for spec in config_tensors(tensors, max_batch_size):
        reshape = f", reshape: {spec.reshape}" if spec.reshape is not None else ""
        lines.append(
            f"    #   - {{ name: {spec.name}, dtype: {spec.dtype}, dims: {spec.dims}{reshape} }}"
        )
    return lines


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive
        return str(path.resolve())


def _entry(path: Path, name: str, base: Path) -> InitEntry:
    fmt = detect_format(path)
    max_batch, delay = _DEFAULTS[fmt.family]
    source = _relative(path, base)
    lines = [f"  # {path.name}: {fmt}"]
    head = [
        f"  - name: {name}",
        f"    source: {yaml.safe_dump(source).strip().removesuffix('...').strip()}",
    ]
    samples = _samples_beside(path)
    note = ""
    if fmt is Format.TORCHSCRIPT:
        lines += head
        lines += [
            "    # TorchScript carries no tensor names, dtypes or shapes: declare them, in the",
            "    # order of forward()'s arguments and results (dims without the batch axis), e.g.",
            "    # inputs: [{ name: x, dtype: FP32, dims: [16] }]",
            "    # outputs: [{ name: y, dtype: FP32, dims: [4] }]",
            f"    max_batch_size: {max_batch}",
        ]
        note = "TorchScript: add `inputs:` and `outputs:` to its entry before building"
    elif fmt is Format.SKLEARN_PICKLE:
        lines += head
        lines += [
            "    # A pickle runs code from the file when it is loaded: init did not open it. Set",
            "    # trust_pickle: true only if you trust this file (or save it with skops.io.dump",
            "    # as .skops). Tree ensembles serve best through FIL: add `backend: fil`.",
            "    trust_pickle: false",
            f"    max_batch_size: {max_batch}",
        ]
        note = "a pickle: set `trust_pickle: true` in its entry if you trust the file"
    else:
        trees = fmt.family in ("trees", "sklearn", "huggingface")  # always batched
        probe = ModelSpec(
            name=name,
            source=str(path),
            backend=BACKEND_FOR_FAMILY[fmt.family][0],
            max_batch_size=max_batch if trees else 0,
        )
        artifact, imports = _read_importing(path, fmt, probe)
        if fmt.family == "sklearn" and artifact.info.get("graph") is not None:
            from triton_deploy.build.sklearn import is_tree_ensemble, load_estimator

            if is_tree_ensemble(load_estimator(path, fmt, probe)):
                probe = probe.model_copy(update={"backend": "fil"})
                artifact = read_artifact(path, fmt, probe)
                head.append("    backend: fil   # a tree ensemble: FIL (onnxruntime also works)")
        if fmt is Format.HUGGINGFACE:
            task = artifact.info["task"]
            head.append(
                f"    task: {task}   # from config.json; also: "
                + " | ".join(t for t in ("text-classification", "feature-extraction") if t != task)
            )
        if imports:
            probe = probe.model_copy(update={"pre_import": imports})
            head.append(
                f"    pre_import: [{', '.join(imports)}]   # registers the pytree type of its outputs"
            )
        batched = trees or all(
            t.shape and t.shape[0] == -1 for t in artifact.inputs + artifact.outputs
        )
        relaxed = ""
        if fmt is Format.ONNX and not batched:
            artifact, batched, relaxed = _try_dynamic_batch(path, fmt, probe, artifact)
        max_batch = max_batch if batched else 0
        lines += head
        lines += _onnx_notes(artifact) if fmt is Format.ONNX else []
        if relaxed and batched:
            lines.append(f"    dynamic_batch: true   {relaxed}")
        renames = _graph_generated(artifact.outputs) if fmt.family in ("onnx", "torch") else {}
        if renames:
            pairs = ", ".join(f"{old}: {new}" for old, new in renames.items())
            lines.append(
                f"    rename: {{ {pairs} }}   # graph-generated name(s) made meaningful; edit freely"
            )
            artifact.outputs = [
                Tensor(renames.get(t.name, t.name), t.dtype, t.shape) for t in artifact.outputs
            ]
        if fmt.family == "trees":
            tree, plan = artifact.tree, artifact.fil
            lines += [
                f"    # {tree.objective}: {tree.task}, {tree.n_features} features"
                + (f", {tree.n_classes} classes" if tree.task == "multiclass" else ""),
                f"    # FIL serves output__0 [{plan.width}]"
                + (" = class probabilities" if plan.predict_proba else ""),
            ]
            if tree.categories:
                table = tree.category_table()
                names = [table["features"][i] for i in sorted(tree.categories)]
                named = all(tree.categories.values())
                lines.append(
                    f"    categorical: codes   # {names} categorical: clients send category codes"
                    " (categories.json maps names to codes)"
                    + (
                        "; `strings` takes the names through a generated preprocessing model"
                        if named
                        else "; the file holds no names, so codes only"
                    )
                )
            if tree.task == "binary":
                lines.append(
                    "    # fil: { threshold: 0.5 }   # also: output_class, predict_proba, proba_width"
                )
            elif tree.task == "multiclass":
                lines.append("    # fil: { predict_proba: false }   # the class index instead")
        lines += _tensor_lines("inputs", artifact.inputs, max_batch)
        lines += _tensor_lines("outputs", artifact.outputs, max_batch)
        if not batched:
            lines.append(
                "    # The file has a fixed first dim: served unbatched. Re-export with a dynamic"
                " batch axis to batch."
            )
            if relaxed:  # why dynamic_batch does not work for it
                lines.append(f"    {relaxed}")
        lines.append(f"    max_batch_size: {max_batch}")
    problem = ""
    if samples is not None and fmt not in (Format.TORCHSCRIPT, Format.SKLEARN_PICKLE):
        try:
            load_samples(samples, artifact.inputs, batching=max_batch > 0)
        except ArtifactError as exc:
            problem = str(exc).removeprefix(f"{samples}: ")
    if fmt in (Format.ONNX, Format.TORCH_EXPORT):
        lines.append(
            "    # samples may also hold `expected/<output>` arrays computed by the training"
            " framework: parity is then checked against those, not against this file"
        )
    if samples is not None and problem:
        lines.append(f"    # samples: {_relative(samples, base)}   # does not fit: {problem}")
    elif samples is not None:
        lines.append(
            f"    samples: {_relative(samples, base)}   # real inputs: parity and golden cases"
        )
    else:
        lines.append(
            "    # samples: inputs.npz   # real inputs (keyed by input name); without them the"
            " build checks synthetic ones"
        )
    if max_batch > 0:
        lines += [
            "    dynamic_batching:",
            f"      max_queue_delay_microseconds: {delay}",
            "      # preferred_batch_size: [16, 32]",
        ]
    lines += [
        "    instance_group: [{ kind: KIND_AUTO, count: 1 }]",
        "    tolerance: { atol: 1.0e-5, rtol: 1.0e-5 }",
    ]
    return InitEntry(name, "\n".join(lines), note)


_GENERATED = re.compile(r"^(?:aten_)?[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*_\d+$")


def _graph_generated(outputs: list[Tensor]) -> dict[str, str]:
    """Output names an exporter made up from graph nodes (``linear_13``, ``add_2``)."""
    generated = [t.name for t in outputs if _GENERATED.match(t.name)]
    if not generated:
        return {}
    if len(outputs) == 1:
        return {generated[0]: "output"}
    return {
        name: f"output_{outputs.index(next(t for t in outputs if t.name == name))}"
        for name in generated
    }


_PRE_IMPORT = re.compile(r"`pre_import: \[([\w.]+)\]`")


def _read_importing(path: Path, fmt: Format, probe: ModelSpec) -> tuple[Artifact, list[str]]:
    """The artifact; a torch.export file whose output type needs a module imported first is
    read again with it (which init then writes into the spec as ``pre_import:``)."""
    try:
        return read_artifact(path, fmt, probe), []
    except ArtifactError as exc:
        found = _PRE_IMPORT.search(str(exc))
        if found is None:
            raise
        imports = [found.group(1)]
        return read_artifact(path, fmt, probe.model_copy(update={"pre_import": imports})), imports


def _onnx_notes(artifact: Artifact) -> list[str]:
    return [f"    # build: {note}" for note in artifact.info.get("notes", [])]


def _try_dynamic_batch(
    path: Path, fmt: Format, probe: ModelSpec, artifact: Artifact
) -> tuple[Artifact, bool, str]:
    """The artifact with ``dynamic_batch`` when the graph proves row-independent (True), and
    the spec comment saying so or why not."""
    fixed = artifact.inputs[0].shape[0] if artifact.inputs and artifact.inputs[0].shape else None
    try:
        relaxed = read_artifact(path, fmt, probe.model_copy(update={"dynamic_batch": True}))
    except ArtifactError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        return artifact, False, f"# dynamic_batch: true was tried and fails: {reason}"
    return (
        relaxed,
        True,
        (
            f"# exported with a fixed batch of {fixed} (torch.onnx.export's default); init "
            "checked that every row is computed alone, so it batches"
        ),
    )


def init_spec(files: list[Path], spec_path: Path) -> tuple[str, list[InitEntry]]:
    """The spec text for ``files`` (paths relative to the spec's folder) and its entries."""
    if not files:
        raise SpecError("give at least one model file")
    base = spec_path.resolve().parent
    taken: set[str] = set()
    entries = []
    for path in files:
        if not path.exists():
            raise ArtifactError(f"{path}: file not found")
        entries.append(_entry(path, _model_name(path, taken), base))
    header = [
        "# Build spec written by `tdeploy init`; `tdeploy build` turns it into a Triton model",
        "# repository. Paths are relative to this file. Reference: README, 'Bring your own model'.",
        "seed: 0",
        "",
        "models:",
    ]
    return "\n".join(header + [e.text + "\n" for e in entries]), entries


def write_spec(files: list[Path], spec_path: Path, *, force: bool = False) -> list[InitEntry]:
    if spec_path.exists() and not force:
        raise SpecError(f"{spec_path} exists: pass --force to overwrite it")
    text, entries = init_spec(files, spec_path)
    # The spec must load as written (paths resolve against its folder).
    from triton_deploy.build.spec import BuildSpec

    try:
        BuildSpec.model_validate(yaml.safe_load(text))
    except Exception as exc:  # a TorchScript entry without tensors is expected to fail
        if not any(e.note for e in entries):
            raise SpecError(f"the written spec does not validate: {exc}") from exc
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(text)
    return entries
