"""runtime/repository.py: reading a model repository and planning what can load here."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.errors import TritonDeployError
from triton_deploy.runtime.repository import make_view, plan_view, read_config, read_repository


def write(root: Path, config: mc.ModelConfig, folder: str | None = None) -> Path:
    directory = root / (folder or config.name)
    directory.mkdir(parents=True)
    (directory / "config.pbtxt").write_text(text_format.MessageToString(config))
    return directory


def ensemble(name: str, *members: str) -> mc.ModelConfig:
    config = mc.ModelConfig(name=name, platform="ensemble")
    for member in members:
        config.ensemble_scheduling.step.add(model_name=member, model_version=-1)
    return config


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, mc.ModelConfig(name="cnn", platform="onnxruntime_onnx"))
    write(root, mc.ModelConfig(name="cnn_trt", platform="tensorrt_plan"))
    write(root, mc.ModelConfig(name="post", backend="python"))
    write(root, ensemble("pipeline", "cnn", "post"))
    write(root, ensemble("pipeline_trt", "cnn_trt", "post"))
    write(root, ensemble("outer", "pipeline_trt"))  # skipped through a skipped ensemble
    write(root, ensemble("broken", "missing"))
    return root


def test_every_model_folder_is_read_by_its_config_name(repository: Path) -> None:
    models = read_repository(repository)
    assert sorted(models) == [
        "broken", "cnn", "cnn_trt", "outer", "pipeline", "pipeline_trt", "post",
    ]  # fmt: skip
    assert models["cnn"].kind == "onnxruntime_onnx" and not models["cnn"].needs_gpu
    assert models["cnn_trt"].needs_gpu
    assert models["pipeline"].ensemble_members == ["cnn", "post"]


def test_without_a_gpu_tensorrt_and_what_depends_on_it_are_skipped(repository: Path) -> None:
    loaded, skipped = plan_view(read_repository(repository), gpu=False)
    assert sorted(loaded) == ["cnn", "pipeline", "post"]
    assert "needs an NVIDIA GPU" in skipped["cnn_trt"]
    assert skipped["pipeline_trt"] == "ensemble step model 'cnn_trt' is skipped"
    assert skipped["outer"] == "ensemble step model 'pipeline_trt' is skipped"
    assert skipped["broken"] == "ensemble step model 'missing' is not in the repository"
    loaded, skipped = plan_view(read_repository(repository), gpu=True)
    assert set(skipped) == {"broken"} and "cnn_trt" in loaded and "outer" in loaded


def test_the_view_links_only_the_chosen_models(repository: Path, tmp_path: Path) -> None:
    view = make_view(repository, ["cnn", "post"], tmp_path / "view")
    assert sorted(p.name for p in view.iterdir()) == ["cnn", "post"]
    assert (view / "cnn").resolve() == (repository / "cnn").resolve()
    assert make_view(repository, ["cnn", "post"], view) == view  # again: no error


def test_bad_repositories_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TritonDeployError, match="does not exist; run `tdeploy build`"):
        read_repository(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TritonDeployError, match=r"holds no model \(no \*/config.pbtxt\)"):
        read_repository(tmp_path / "empty")
    bad = tmp_path / "bad" / "m"
    bad.mkdir(parents=True)
    (bad / "config.pbtxt").write_text("name: 'm'\nmax_batch_size: lots\n")
    with pytest.raises(TritonDeployError, match=r"config\.pbtxt: not a valid Triton model config"):
        read_config(bad / "config.pbtxt")
