"""Is this the repository the build produced? Every file against the manifest's digests.

A changed file, a missing one, an extra one or a symlink is a ``FileProblem`` naming the file
and both digests; ``verify_repository`` raises ``IntegrityError`` listing them all. TensorRT
plans built on the node by ``build_plans.sh`` (``model.plan``, ``model.plan.json``) are the
only files allowed beside the recorded ones, and only in a TensorRT model's version folders.

    report = check_repository(Path("model_repository"))   # IntegrityReport
    report.problems                                        # [] when it verifies
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from triton_deploy.errors import TritonDeployError

from ._config import GPU_ONLY_PLATFORMS, read_config
from ._layout import CONFIG, NODE_GENERATED
from ._manifest import Manifest, file_digest, manifest_digest, read_manifest, repository_files

Problem = Literal["changed", "missing", "extra", "symlink"]


class IntegrityError(TritonDeployError):
    """The repository is not what its manifest (or its pin) says: names every file at fault."""

    def __init__(self, message: str, problems: list[FileProblem] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


@dataclass(frozen=True)
class FileProblem:
    path: str  # relative to the repository
    problem: Problem
    expected: str | None = None  # the manifest's sha256
    found: str | None = None  # the file's sha256

    def __str__(self) -> str:
        if self.problem == "changed":
            return (
                f"{self.path}: changed since the build (manifest sha256 {self.expected}, "
                f"file sha256 {self.found})"
            )
        if self.problem == "missing":
            return f"{self.path}: missing (manifest sha256 {self.expected})"
        if self.problem == "symlink":
            return f"{self.path}: a symlink (a repository holds plain files only)"
        return f"{self.path}: not made by the build (file sha256 {self.found}; not in the manifest)"


@dataclass
class IntegrityReport:
    """The outcome of one check: the files checked and every problem found."""

    repository: Path
    manifest: Manifest | None
    digest: str | None  # sha256:<hex> of manifest.json
    checked: int = 0
    problems: list[FileProblem] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)  # node-built plans, not checked

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems

    def summary(self) -> str:
        if self.manifest is None:
            return f"{self.repository}: no build manifest; files not verified"
        if self.problems:
            return f"{self.repository}: {len(self.problems)} file(s) do not match the manifest"
        return f"{self.repository}: {self.checked} files match the manifest ({self.digest})"

    def raise_for_problems(self) -> None:
        if self.problems:
            lines = "\n".join(f"  {p}" for p in self.problems)
            raise IntegrityError(
                f"{self.repository} is not the repository its manifest describes "
                f"({len(self.problems)} problem(s)):\n{lines}",
                self.problems,
            )


def _tensorrt_models(repository: Path, names: list[str]) -> set[str]:
    found = set()
    for name in names:
        config = repository / name / CONFIG
        if config.is_file():
            try:
                kind = read_config(config)
            except TritonDeployError:
                continue
            if (kind.platform or kind.backend) in GPU_ONLY_PLATFORMS:
                found.add(name)
    return found


def check_repository(
    repository: Path, *, models: list[str] | None = None, expected_digest: str | None = None
) -> IntegrityReport:
    """Every file of ``repository`` (or of ``models`` and the root only) against the manifest.

    ``expected_digest`` (``sha256:<hex>``) pins the manifest itself: a different one raises
    ``IntegrityError``. A repository without a manifest gives a report with ``manifest`` None.
    """
    repository = Path(repository)
    if not repository.is_dir():
        raise IntegrityError(f"model repository {repository} does not exist; run `tdeploy build`")
    manifest = read_manifest(repository)
    if manifest is None:
        if expected_digest:
            raise IntegrityError(
                f"{repository}: no manifest.json, but the manifest digest {expected_digest} "
                "was required"
            )
        return IntegrityReport(repository, None, None)
    digest = manifest_digest(repository)
    if expected_digest and _normal(expected_digest) != digest:
        raise IntegrityError(
            f"{repository}: manifest digest {digest}, but {_normal(expected_digest)} was "
            "required: this is not the pinned repository"
        )
    recorded = manifest.all_files()
    if models is None:
        present = repository_files(repository)
    else:
        present = {
            k: v
            for k, v in repository_files(repository).items()
            if PurePosixPath(k).parts[0] in models or len(PurePosixPath(k).parts) == 1
        }
        recorded = {
            k: v
            for k, v in recorded.items()
            if PurePosixPath(k).parts[0] in models or len(PurePosixPath(k).parts) == 1
        }
    tensorrt = _tensorrt_models(repository, sorted({PurePosixPath(k).parts[0] for k in present}))
    report = IntegrityReport(repository, manifest, digest)
    for relative, expected in sorted(recorded.items()):
        path = present.get(relative)
        if path is None:
            report.problems.append(FileProblem(relative, "missing", expected.sha256))
            continue
        if path.is_symlink():
            report.problems.append(FileProblem(relative, "symlink", expected.sha256))
            continue
        found = file_digest(path)
        report.checked += 1
        if found.sha256 != expected.sha256 or (
            expected.size is not None and found.size != expected.size
        ):
            report.problems.append(FileProblem(relative, "changed", expected.sha256, found.sha256))
    for relative, path in sorted(present.items()):
        if relative in recorded:
            continue
        parts = PurePosixPath(relative).parts
        if (
            len(parts) == 3
            and parts[0] in tensorrt
            and parts[1].isdigit()
            and parts[2] in NODE_GENERATED
            and not path.is_symlink()
        ):
            report.generated.append(relative)
            continue
        if path.is_symlink():
            report.problems.append(FileProblem(relative, "symlink"))
        else:
            report.problems.append(FileProblem(relative, "extra", found=file_digest(path).sha256))
    return report


def verify_repository(
    repository: Path, *, models: list[str] | None = None, expected_digest: str | None = None
) -> IntegrityReport:
    """``check_repository`` that raises ``IntegrityError`` on any problem (see there)."""
    report = check_repository(repository, models=models, expected_digest=expected_digest)
    report.raise_for_problems()
    return report


def _normal(digest: str) -> str:
    digest = digest.strip().lower()
    return digest if digest.startswith("sha256:") else f"sha256:{digest}"
