"""TensorRT: what runs without a GPU is tested here; building a plan needs one (marked gpu)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from triton_deploy.build.onnx2trt import (
    build_plans_script,
    gpu_unavailable_reason,
    plan_profiles,
    trtexec_args,
)
from triton_deploy.build.spec import TensorRTOptions, TensorSpec
from triton_deploy.errors import BuildError

IMAGES = [TensorSpec(name="images", dtype="FP32", dims=[1, 8, 8])]


def test_profile_covers_batch_one_to_max() -> None:
    (profile,) = plan_profiles(IMAGES, 64, TensorRTOptions())
    assert profile.min == (1, 1, 8, 8)
    assert profile.opt == (32, 1, 8, 8)
    # Triton rejects a config whose max_batch_size exceeds the engine's kMAX of dim 0.
    assert profile.max == (64, 1, 8, 8)
    assert plan_profiles(IMAGES, 64, TensorRTOptions(opt_batch_size=8))[0].opt[0] == 8


@pytest.mark.parametrize(
    ("inputs", "max_batch", "options", "message"),
    [
        (IMAGES, 0, TensorRTOptions(), "max_batch_size >= 1"),
        (IMAGES, 8, TensorRTOptions(opt_batch_size=16), "exceeds max_batch_size"),
        ([TensorSpec(name="x", dtype="FP32", dims=[-1, 8])], 8, TensorRTOptions(), "variable dim"),
    ],
)
def test_profile_errors(inputs, max_batch: int, options, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BuildError, match=message):
        plan_profiles(inputs, max_batch, options)


def test_trtexec_command_line() -> None:
    profiles = plan_profiles(IMAGES, 64, TensorRTOptions(precision="fp16", workspace_mib=512))
    args = trtexec_args(
        "1/model.onnx", "1/model.plan", profiles, TensorRTOptions(workspace_mib=512)
    )
    assert args == [
        "--onnx=1/model.onnx",
        "--saveEngine=1/model.plan",
        "--minShapes=images:1x1x8x8",
        "--optShapes=images:32x1x8x8",
        "--maxShapes=images:64x1x8x8",
        "--memPoolSize=workspace:512M",
        "--fp16",
    ]
    fp32 = trtexec_args("a", "b", profiles, TensorRTOptions(precision="fp32"))
    assert "--fp16" not in fp32


def test_build_plans_script_runs_with_fake_gpu_tools(tmp_path: Path) -> None:
    """The generated script, run by a real sh, with stand-ins for nvidia-smi and trtexec
    (no GPU here): it builds into the cache keyed by compute capability and TensorRT
    version, copies the plan into the repository, and reuses the cache on the next run."""
    profiles = plan_profiles(IMAGES, 64, TensorRTOptions())
    args = trtexec_args("1/model.onnx", "1/model.plan", profiles, TensorRTOptions())
    script = tmp_path / "build_plans.sh"
    script.write_text(build_plans_script([("digits_cnn_trt", 1, args)]))
    subprocess.run(["sh", "-n", str(script)], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho '9.0'\n")
    calls = tmp_path / "calls.log"
    (bin_dir / "trtexec").write_text(
        "#!/bin/sh\n"
        'echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100500] # trtexec $*"\n'
        f'echo "$*" >> {calls}\n'
        'for a in "$@"; do case "$a" in --saveEngine=*) echo plan > "${a#--saveEngine=}";; esac; done\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    repo = tmp_path / "repo"
    (repo / "digits_cnn_trt" / "1").mkdir(parents=True)
    (repo / "digits_cnn_trt" / "1" / "model.onnx").write_text("onnx")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    for _ in range(2):
        subprocess.run(["sh", str(script), str(repo), str(tmp_path / "cache")], check=True, env=env)
    assert (tmp_path / "cache/digits_cnn_trt/1/sm90-trt100500/model.plan").read_text() == "plan\n"
    assert (repo / "digits_cnn_trt/1/model.plan").read_text() == "plan\n"
    assert '"compute_capability": "90"' in (repo / "digits_cnn_trt/1/model.plan.json").read_text()
    builds = [line for line in calls.read_text().splitlines() if "--onnx=" in line]
    assert len(builds) == 1  # the second run used the cache
    assert "--maxShapes=images:64x1x8x8" in builds[0] and "--fp16" in builds[0]


def test_without_gpu_the_reason_is_plain() -> None:
    if shutil.which("nvidia-smi") and Path("/dev/nvidia0").exists():
        pytest.skip("this machine has a GPU")
    reason = gpu_unavailable_reason()
    assert reason is not None and "no NVIDIA GPU" in reason


@pytest.mark.gpu
def test_build_plan_on_gpu(model_repository: Path, tmp_path: Path) -> None:
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs an NVIDIA GPU and TensorRT: {reason}")
    from triton_deploy.build.onnx2trt import build_plan

    profiles = plan_profiles(IMAGES, 64, TensorRTOptions())
    tag = build_plan(
        model_repository / "digits_cnn_trt/1/model.onnx",
        tmp_path / "model.plan",
        profiles,
        TensorRTOptions(),
    )
    assert (tmp_path / "model.plan").stat().st_size > 0
    assert tag["tensorrt_version"] and tag["compute_capability"]


def test_a_tensorrt_model_from_a_users_onnx_and_pt2_file(tmp_path: Path) -> None:
    """`source:` with `backend: tensorrt`: ONNX as is, a .pt2 through ONNX first; the config,
    the copied ONNX and the build_plans.sh line are written; the plan itself needs a GPU."""
    import yaml
    from rich.console import Console
    from usermodels import make_pt2_mlp, make_two_input_onnx

    from triton_deploy.build.pipeline import build_repository
    from triton_deploy.build.spec import load_spec
    from triton_deploy.runtime.repository import read_config

    make_two_input_onnx(tmp_path)
    make_pt2_mlp(tmp_path)
    spec = tmp_path / "models.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "pair_trt",
                        "source": "pair.onnx",
                        "backend": "tensorrt",
                        "max_batch_size": 8,
                    },
                    {
                        "name": "mlp_trt",
                        "source": "mlp.pt2",
                        "backend": "tensorrt",
                        "max_batch_size": 8,
                    },
                ]
            }
        )
    )
    out = tmp_path / "repo"
    report = build_repository(load_spec(spec), out, console=Console(quiet=True))
    steps = {r.model: r.step for r in report.results}
    assert steps == {"pair_trt": "onnx→tensorrt", "mlp_trt": "pt2→onnx → onnx→tensorrt"}
    for name in ("pair_trt", "mlp_trt"):
        config = read_config(out / name / "config.pbtxt")
        assert config.platform == "tensorrt_plan" and config.max_batch_size == 8
        assert (out / name / "1" / "model.onnx").is_file()
        assert f"build_plan {name} 1 " in (out / "build_plans.sh").read_text()
    if gpu_unavailable_reason() is not None:
        assert {r.status for r in report.results} == {"SKIPPED"}
        assert report.swapped  # skipped plans do not fail the build
