"""Read a model repository and pick what a target (cpu or gpu) can load.

TensorRT plans need an NVIDIA GPU; on a CPU-only machine they, and any ensemble that uses them,
are left out of a *view* of the repository (a folder of symlinks), and the reason is reported.
Models the build manifest marks as failing parity are left out the same way unless asked.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.errors import TritonDeployError

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

GPU_ONLY_PLATFORMS = frozenset({"tensorrt_plan", "tensorrt"})


@dataclass(frozen=True)
class RepositoryModel:
    name: str
    path: Path
    config: mc.ModelConfig

    @property
    def kind(self) -> str:
        return self.config.platform or self.config.backend

    @property
    def needs_gpu(self) -> bool:
        return self.kind in GPU_ONLY_PLATFORMS

    @property
    def ensemble_members(self) -> list[str]:
        return [step.model_name for step in self.config.ensemble_scheduling.step]


def read_config(path: Path) -> mc.ModelConfig:
    config = mc.ModelConfig()
    try:
        text_format.Parse(path.read_text(), config)
    except text_format.ParseError as exc:
        raise TritonDeployError(f"{path}: not a valid Triton model config: {exc}") from exc
    return config


def read_repository(repository: Path) -> dict[str, RepositoryModel]:
    """Every model folder with a config.pbtxt, by name."""
    if not repository.is_dir():
        raise TritonDeployError(
            f"model repository {repository} does not exist; run `tdeploy build`"
        )
    models = {}
    for config_path in sorted(repository.glob("*/config.pbtxt")):
        config = read_config(config_path)
        name = config.name or config_path.parent.name
        models[name] = RepositoryModel(name, config_path.parent, config)
    if not models:
        raise TritonDeployError(f"model repository {repository} holds no model (no */config.pbtxt)")
    return models


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible (device node and driver tool)."""
    return Path("/dev/nvidia0").exists() and shutil.which("nvidia-smi") is not None


def failed_parity(repository: Path) -> dict[str, str]:
    """Models whose build manifest (``manifest.json``) says their parity check FAILED, with why.

    No manifest (a repository not built by ``tdeploy build``) means nothing is known to fail.
    """
    path = repository / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise TritonDeployError(f"{path}: unreadable build manifest: {exc}") from exc
    failed = {}
    for name, entry in (manifest.get("models") or {}).items():
        parity = entry.get("parity") if isinstance(entry, dict) else None
        if isinstance(parity, dict) and parity.get("passed") is False:
            detail = parity.get("problem") or (
                f"max abs diff {parity.get('max_abs_diff', float('nan')):.3g} over "
                f"atol {parity.get('atol')} / rtol {parity.get('rtol')}"
            )
        elif isinstance(parity, str) and parity.upper() in ("FAIL", "FAILED"):
            detail = str(entry.get("detail") or "")
        else:
            continue
        failed[name] = (
            f"parity FAILED in the build ({detail}); serve it anyway with --allow-failed-parity"
        )
    return failed


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
