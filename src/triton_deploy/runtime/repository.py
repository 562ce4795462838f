"""Read a model repository and pick what a target (cpu or gpu) can load.

TensorRT plans need an NVIDIA GPU; on a CPU-only machine they, and any ensemble that uses them,
are left out of a *view* of the repository (a folder of symlinks), and the reason is reported.
Models the build manifest marks as failing parity are left out the same way unless asked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from triton_deploy.repository import (
    GPU_ONLY_PLATFORMS,
    RepositoryModel,
    read_config,
    read_manifest,
    read_repository,
)

__all__ = [
    "GPU_ONLY_PLATFORMS",
    "RepositoryModel",
    "failed_parity",
    "gpu_available",
    "make_view",
    "plan_view",
    "read_config",
    "read_repository",
]


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible (device node and driver tool)."""
    return Path("/dev/nvidia0").exists() and shutil.which("nvidia-smi") is not None


def failed_parity(repository: Path) -> dict[str, str]:
    """Models whose build manifest (``manifest.json``) says their parity check FAILED, with why.

    No manifest (a repository not built by ``tdeploy build``) means nothing is known to fail.
    """
    manifest = read_manifest(repository)
    if manifest is None:
        return {}
    return {
        name: f"parity FAILED in the build ({detail}); serve it anyway with --allow-failed-parity"
        for name, detail in manifest.failed_parity().items()
    }


def plan_view(
    models: dict[str, RepositoryModel], *, gpu: bool, refused: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """Models that can load on this target, and the skipped ones with the reason for each.

    ``refused`` names models left out for a reason of the caller's (e.g. failed parity).
    """
    skipped: dict[str, str] = {k: v for k, v in (refused or {}).items() if k in models}
    if not gpu:
        for model in models.values():
            if model.needs_gpu:
                skipped[model.name] = (
                    f"{model.kind} needs an NVIDIA GPU and TensorRT; none here "
                    "(serve it on a GPU node, or use the onnxruntime variant)"
                )
    changed = True
    while changed:  # ensembles whose members are skipped or missing cannot load either
        changed = False
        for model in models.values():
            if model.name in skipped:
                continue
            for member in model.ensemble_members:
                if member in skipped or member not in models:
                    why = "is skipped" if member in skipped else "is not in the repository"
                    skipped[model.name] = f"ensemble step model {member!r} {why}"
                    changed = True
                    break
    return [name for name in models if name not in skipped], skipped


def make_view(repository: Path, names: list[str], destination: Path) -> Path:
    """A repository folder holding symlinks to the chosen model folders only."""
    destination.mkdir(parents=True, exist_ok=True)
    models = read_repository(repository)
    for name in names:
        link = destination / models[name].path.name
        if not link.exists():
            link.symlink_to(models[name].path.resolve(), target_is_directory=True)
    return destination
