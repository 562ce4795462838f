"""``manifest.json``: what the build produced, typed, with a schema version.

Every file of the repository is recorded with its sha256 and size (paths relative to the
repository, ``/``-separated: a copy made with ``aws s3 sync`` or ``gsutil rsync`` verifies the
same), with each model's provenance: source file and its digest, format, the converter steps,
the parity check, the tolerances and the framework versions it was built with. The build
writes it last and atomically; ``manifest_digest`` (the sha256 of its bytes) names one exact
repository (the chart's ``<color>.modelRepository.manifestDigest``, the rollout record).

    manifest = read_manifest(Path("model_repository"))        # None when there is none
    manifest.models["digits"].parity.passed
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from triton_deploy.errors import TritonDeployError

from ._layout import IGNORED_DIRECTORIES, MANIFEST, SIGNATURE

SCHEMA_VERSION = 3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileDigest(_Model):
    """One file's sha256 (hex) and size in bytes (``None`` in manifests older than schema 3)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None = Field(default=None, ge=0)


class Tolerance(_Model):
    atol: float = 1e-5
    rtol: float = 1e-5


class Parity(BaseModel):
    """The build's comparison of the served file with the source framework on the samples."""

    model_config = ConfigDict(extra="allow")  # per-output details ("outputs")

    max_abs_diff: float
    atol: float
    rtol: float
    passed: bool
    samples: int = 0
    problem: str | None = None
    exact: bool = False


class ModelEntry(_Model):
    """One model (or ensemble) of the repository as the build made it."""

    version: int = 1
    backend: str = ""
    source: str = ""  # the spec's reference (relative path or recipe output), never absolute
    source_sha256: str = ""
    format: str = ""
    converter: str = ""  # the steps, e.g. "pt2 → onnx"
    status: Literal["OK", "FAIL", "SKIPPED"] = "OK"
    detail: str = ""
    parity: Parity | None = None
    samples: str = ""
    tolerance: Tolerance = Field(default_factory=Tolerance)
    metrics: dict[str, float] = Field(default_factory=dict)
    frameworks: dict[str, str] = Field(default_factory=dict)
    files: dict[str, FileDigest] = Field(default_factory=dict)
    # a model a converter wrote beside another (a tokenizer, a categorical preprocessor): its owner
    companion_of: str = ""

    @model_validator(mode="before")
    @classmethod
    def _schema_2(cls, data: Any) -> Any:
        """Schema 2 (before this module) kept ``steps`` and ``files: {path: sha256}``."""
        if isinstance(data, dict):
            data = dict(data)
            if "steps" in data:
                data.setdefault("converter", data.pop("steps"))
            files = data.get("files")
            if isinstance(files, dict):
                data["files"] = {
                    k: {"sha256": v} if isinstance(v, str) else v for k, v in files.items()
                }
        return data


class Manifest(_Model):
    """The build manifest (see the module docstring)."""

    schema_version: int = SCHEMA_VERSION
    spec: str | None = None  # the spec's file name
    spec_fingerprint: str = ""
    inputs_fingerprint: str = ""
    seed: int = 0
    target: dict[str, str] = Field(default_factory=dict)
    frameworks: dict[str, str] = Field(default_factory=dict)
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    # Files outside the model folders (build_plans.sh).
    files: dict[str, FileDigest] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _schema_2(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data and "format" in data:
            data = dict(data)
            data["schema_version"] = data.pop("format")
            spec = data.get("spec")
            if isinstance(spec, str):
                data["spec"] = PurePosixPath(spec.replace("\\", "/")).name
        return data

    @field_validator("schema_version")
    @classmethod
    def _known(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(
                f"schema {value} is newer than this tdeploy reads ({SCHEMA_VERSION}): upgrade it"
            )
        return value

    @field_validator("files")
    @classmethod
    def _relative(cls, files: dict[str, FileDigest]) -> dict[str, FileDigest]:
        for path in files:
            _check_relative(path)
        return files

    @model_validator(mode="after")
    def _relative_model_files(self) -> Manifest:
        for entry in self.models.values():
            for path in entry.files:
                _check_relative(path)
        return self

    def all_files(self) -> dict[str, FileDigest]:
        """Every recorded file (model folders and the root), by relative path."""
        files = dict(self.files)
        for entry in self.models.values():
            files.update(entry.files)
        return files

    def failed_parity(self) -> dict[str, str]:
        """Models whose parity check FAILED in the build, with why."""
        failed = {}
        for name, entry in self.models.items():
            parity = entry.parity
            if parity is not None and not parity.passed:
                detail = parity.problem or (
                    f"max abs diff {parity.max_abs_diff:.3g} over "
                    f"atol {parity.atol} / rtol {parity.rtol}"
                )
            elif entry.status == "FAIL":
                detail = entry.detail
            else:
                continue
            failed[name] = detail
        return failed


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or not path:
        raise ValueError(f"{path!r}: files are recorded relative to the repository")


class ManifestError(TritonDeployError):
    """A manifest.json that cannot be read or is not a build manifest (names the file)."""


def file_digest(path: Path) -> FileDigest:
    """sha256 and size of one file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return FileDigest(sha256=digest.hexdigest(), size=size)


def is_recorded(relative: PurePosixPath) -> bool:
    """Whether a file at this repository-relative path belongs in the manifest."""
    if relative.as_posix() in (MANIFEST, SIGNATURE):
        return False
    return not any(part in IGNORED_DIRECTORIES for part in relative.parts)


def repository_files(repository: Path, under: str | None = None) -> dict[str, Path]:
    """Every file the manifest must cover (below ``under`` only, when given), by relative path.

    Symlinks are returned too (as themselves): the check refuses them.
    """
    repository = Path(repository)
    found: dict[str, Path] = {}
    top = repository / under if under else repository
    if not top.exists():
        return found
    for root, dirs, files in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRECTORIES)
        here = Path(root)
        names = list(files) + [d for d in dirs if (here / d).is_symlink()]
        for name in sorted(names):
            path = here / name
            relative = PurePosixPath(path.relative_to(repository).as_posix())
            if is_recorded(relative):
                found[relative.as_posix()] = path
    return found


def digests(repository: Path, under: str | None = None) -> dict[str, FileDigest]:
    """Digests of ``repository_files`` (refuses symlinks: they would not survive a copy)."""
    out = {}
    for relative, path in repository_files(repository, under).items():
        if path.is_symlink():
            raise ManifestError(
                f"{path}: a symlink; a repository holds plain files only (a copy with "
                "s3 sync or rsync would not keep it)"
            )
        out[relative] = file_digest(path)
    return out


def manifest_path(repository: Path) -> Path:
    return Path(repository) / MANIFEST


def read_manifest(repository: Path) -> Manifest | None:
    """The repository's manifest, or ``None`` when it has none (a repository made by hand)."""
    path = manifest_path(repository)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ManifestError(f"{path}: unreadable build manifest: {exc.strerror}") from exc
    return parse_manifest(text, str(path))


def parse_manifest(text: bytes | str, where: str = MANIFEST) -> Manifest:
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ManifestError(
            f"{where}: not a valid build manifest: {location}: {first['msg']}"
        ) from None


def manifest_bytes(manifest: Manifest) -> bytes:
    return (manifest.model_dump_json(indent=2, exclude_none=False) + "\n").encode()


def write_manifest(repository: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (a temporary file beside it, fsync, rename)."""
    path = manifest_path(repository)
    data = manifest_bytes(manifest)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{MANIFEST}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def manifest_digest(repository: Path) -> str:
    """``sha256:<hex>`` of the repository's manifest.json bytes: names this exact repository."""
    path = manifest_path(repository)
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: no build manifest, so the repository cannot be pinned (build it with "
            "`tdeploy build`)"
        ) from None
