"""ONNX -> TensorRT plan (``platform: "tensorrt_plan"``).

Plans are not portable: one is only valid for the GPU compute capability and TensorRT version
it was built with. So every plan is tagged with both (``model.plan.json`` beside it), and the
build also emits the exact ``trtexec`` command lines (``build_plans.sh`` at the repository root)
that build each plan on a GPU node, inside the same Triton image that will serve it; the Helm
chart runs that script in an initContainer. Building here needs an NVIDIA GPU and the
``tensorrt`` package; without them ``build_plan`` reports a skip with the reason.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from triton_deploy.build.spec import TensorRTOptions, TensorSpec
from triton_deploy.errors import BuildError

__all__ = [
    "PlanProfile",
    "build_plan",
    "build_plans_script",
    "gpu_unavailable_reason",
    "plan_profiles",
    "trtexec_args",
]


@dataclass(frozen=True)
class PlanProfile:
    """min/opt/max shapes of one input, batch axis included."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def plan_profiles(
    inputs: list[TensorSpec], max_batch_size: int, options: TensorRTOptions
) -> list[PlanProfile]:
    """One optimization profile covering batch 1..max_batch_size (config dims + batch axis).

    Triton derives the engine's max batch from kMAX of dim 0, and rejects a config whose
    max_batch_size exceeds it, so max is exactly max_batch_size.
    """
    if max_batch_size < 1:
        raise BuildError("TensorRT plans are built for batching models (max_batch_size >= 1)")
    opt = options.opt_batch_size or max(1, max_batch_size // 2)
    if opt > max_batch_size:
        raise BuildError(f"tensorrt.opt_batch_size {opt} exceeds max_batch_size {max_batch_size}")
    profiles = []
    for tensor in inputs:
        if -1 in tensor.dims:
            raise BuildError(
                f"input '{tensor.name}' has a variable dim {tensor.dims}: give fixed dims for TensorRT"
            )
        dims = tuple(tensor.dims)
        profiles.append(PlanProfile(tensor.name, (1, *dims), (opt, *dims), (max_batch_size, *dims)))
    return profiles


def _shape(profiles: list[PlanProfile], which: str) -> str:
    return ",".join(f"{p.name}:{'x'.join(map(str, getattr(p, which)))}" for p in profiles)


def trtexec_args(
    onnx_path: str, plan_path: str, profiles: list[PlanProfile], options: TensorRTOptions
) -> list[str]:
    """The trtexec arguments that build the same plan as ``build_plan``."""
    args = [
        f"--onnx={onnx_path}",
        f"--saveEngine={plan_path}",
        f"--minShapes={_shape(profiles, 'min')}",
        f"--optShapes={_shape(profiles, 'opt')}",
        f"--maxShapes={_shape(profiles, 'max')}",
        f"--memPoolSize=workspace:{options.workspace_mib}M",
    ]
    if options.precision == "fp16":
        args.append("--fp16")
    return args


def gpu_unavailable_reason() -> str | None:
    """Why a plan cannot be built here, or None when it can."""
    if shutil.which("nvidia-smi") is None or not Path("/dev/nvidia0").exists():
        return "no NVIDIA GPU on this machine (TensorRT plans are built for a specific GPU)"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed (pip install 'triton-deploy[tensorrt]')"
    return None


def _compute_capability() -> str:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().splitlines()[0].strip()


def build_plan(
    onnx_path: Path, plan_path: Path, profiles: list[PlanProfile], options: TensorRTOptions
) -> dict[str, str]:
    """Build a serialized engine with the TensorRT Python API; returns its tag.

    Raises BuildError with the parser's or builder's own messages on failure.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch (the only mode in TensorRT 10)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.precision == "fp16":
        if not builder.platform_has_fast_fp16:
            raise BuildError("precision fp16 asked, but this GPU has no fast FP16")
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for p in profiles:
        profile.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))
    tag = {
        "compute_capability": _compute_capability(),
        "tensorrt_version": str(trt.__version__),
        "precision": options.precision,
    }
    plan_path.with_name(plan_path.name + ".json").write_text(json.dumps(tag, indent=2) + "\n")
    return tag


_SCRIPT_HEAD = """\
#!/bin/sh
# Generated by `tdeploy build` from build/models.yaml: builds every missing TensorRT plan of this
# model repository on a GPU node, inside the Triton image that serves it (trtexec, nvidia-smi).
# Plans are cached per GPU compute capability and TensorRT version, so a node pool with another
# GPU or an image with another TensorRT gets its own plans; a cached plan is reused.
# usage: sh build_plans.sh REPOSITORY_DIR CACHE_DIR    (TRTEXEC=path overrides trtexec)
set -eu
REPO="${1:?usage: build_plans.sh REPOSITORY_DIR CACHE_DIR}"
CACHE="${2:?usage: build_plans.sh REPOSITORY_DIR CACHE_DIR}"
TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
CC="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' .')"
TRT="${TRT_VERSION:-$("$TRTEXEC" --help 2>&1 | sed -n 's/.*\\[TensorRT v\\([0-9]*\\)\\].*/\\1/p' | head -n 1)}"
[ -n "$CC" ] && [ -n "$TRT" ] || { echo "build_plans.sh: cannot read GPU compute capability or TensorRT version" >&2; exit 1; }
KEY="sm${CC}-trt${TRT}"

build_plan() {  # MODEL VERSION TRTEXEC_ARGS...
  model="$1"; version="$2"; shift 2
  dir="$REPO/$model/$version"
  cached="$CACHE/$model/$version/$KEY/model.plan"
  if [ ! -s "$cached" ]; then
    echo "build_plans.sh: building $model/$version for $KEY"
    mkdir -p "$(dirname "$cached")"
    "$TRTEXEC" --onnx="$dir/model.onnx" --saveEngine="$cached.partial" "$@"
    mv "$cached.partial" "$cached"
  else
    echo "build_plans.sh: $model/$version for $KEY is cached"
  fi
  cp "$cached" "$dir/model.plan"
  printf '{"compute_capability": "%s", "tensorrt_version": "%s"}\\n' "$CC" "$TRT" > "$dir/model.plan.json"
}

"""


def build_plans_script(entries: list[tuple[str, int, list[str]]]) -> str:
    """The repository's ``build_plans.sh`` for (model, version, trtexec args) entries.

    The args given here leave out --onnx/--saveEngine, which the script sets per cache key.
    """
    lines = [_SCRIPT_HEAD]
    for model, version, args in entries:
        rest = [a for a in args if not a.startswith(("--onnx=", "--saveEngine="))]
        lines.append(f"build_plan {shlex.quote(model)} {version} {shlex.join(rest)}\n")
    return "".join(lines)
