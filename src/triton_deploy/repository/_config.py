"""Model folders and their config.pbtxt, read through tritonclient's protobuf classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.errors import TritonDeployError

from ._layout import CONFIG

GPU_ONLY_PLATFORMS = frozenset({"tensorrt_plan", "tensorrt"})


@dataclass(frozen=True)
class RepositoryModel:
    """One model folder: its name, path and parsed config.

    model = read_repository(Path("model_repository"))["digits"]
    model.config.max_batch_size
    """

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
    """A config.pbtxt as a ``ModelConfig``; a ``TritonDeployError`` naming the file if invalid."""
    config = mc.ModelConfig()
    try:
        text_format.Parse(Path(path).read_text(), config)
    except text_format.ParseError as exc:
        raise TritonDeployError(f"{path}: not a valid Triton model config: {exc}") from exc
    return config


def read_repository(repository: Path) -> dict[str, RepositoryModel]:
    """Every model folder with a config.pbtxt, by name."""
    repository = Path(repository)
    if not repository.is_dir():
        raise TritonDeployError(
            f"model repository {repository} does not exist; run `tdeploy build`"
        )
    models = {}
    for config_path in sorted(repository.glob(f"*/{CONFIG}")):
        config = read_config(config_path)
        name = config.name or config_path.parent.name
        models[name] = RepositoryModel(name, config_path.parent, config)
    if not models:
        raise TritonDeployError(f"model repository {repository} holds no model (no */{CONFIG})")
    return models
