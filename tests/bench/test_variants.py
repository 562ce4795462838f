"""Repository variants rewrite configs only; model files are symlinks to the originals."""

from __future__ import annotations

from pathlib import Path

from triton_deploy.bench.variants import batching_off, with_queue_policy
from triton_deploy.runtime.repository import read_config


def test_batching_off(user_repository: Path, tmp_path: Path) -> None:
    off = batching_off(user_repository, tmp_path / "off")
    assert not read_config(off / "tiny_onnx" / "config.pbtxt").HasField("dynamic_batching")
    assert (off / "tiny_onnx" / "1").is_symlink()
    assert read_config(user_repository / "tiny_onnx" / "config.pbtxt").HasField("dynamic_batching")


def test_queue_policy(user_repository: Path, tmp_path: Path) -> None:
    queued = with_queue_policy(user_repository, tmp_path / "q", max_queue_size=7)
    policy = read_config(
        queued / "tiny_trees" / "config.pbtxt"
    ).dynamic_batching.default_queue_policy
    assert policy.max_queue_size == 7
