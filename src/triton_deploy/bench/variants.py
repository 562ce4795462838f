"""Copies of a repository that differ in one setting: batching off, or a queue policy added.

Only the config.pbtxt files are rewritten; everything else in a model folder (version folders
with the weights, assets) is a symlink to the original, so a large user model is not copied.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.runtime.repository import read_repository

__all__ = ["batching_off", "with_queue_policy"]


def _rewrite(repository: Path, destination: Path, change: Callable[[mc.ModelConfig], None]) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for model in read_repository(repository).values():
        folder = destination / model.path.name
        folder.mkdir(exist_ok=True)
        for item in model.path.iterdir():
            if item.name != "config.pbtxt":
                (folder / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
        config = mc.ModelConfig()
        config.CopyFrom(model.config)
        change(config)
        (folder / "config.pbtxt").write_text(text_format.MessageToString(config))
    return destination


def batching_off(repository: Path, destination: Path) -> Path:
    """The repository with ``dynamic_batching`` removed from every model."""

    def change(config: mc.ModelConfig) -> None:
        config.ClearField("dynamic_batching")

    return _rewrite(repository, destination, change)


def with_queue_policy(
    repository: Path, destination: Path, *, max_queue_size: int = 256, timeout_us: int = 1_000_000
) -> Path:
    """The repository with a bounded queue (REJECT after ``timeout_us``) on every batching model."""

    def change(config: mc.ModelConfig) -> None:
        if config.HasField("dynamic_batching"):
            config.dynamic_batching.default_queue_policy.CopyFrom(
                mc.ModelQueuePolicy(
                    timeout_action=mc.ModelQueuePolicy.REJECT,
                    default_timeout_microseconds=timeout_us,
                    allow_timeout_override=True,
                    max_queue_size=max_queue_size,
                )
            )

    return _rewrite(repository, destination, change)
