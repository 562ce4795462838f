"""config.pbtxt through Triton's own protobuf classes (tritonclient's model_config_pb2).

Never a string template: every field is set on ``ModelConfig`` and printed with
``google.protobuf.text_format``, so a config that does not match Triton's schema cannot be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build.spec import (
    DynamicBatching,
    EnsembleSpec,
    InstanceGroup,
    ModelSpec,
    QueuePolicy,
    TensorSpec,
    VersionPolicy,
)

__all__ = [
    "ensemble_config",
    "model_config",
    "queue_policy",
    "render",
    "tensor_specs",
    "write_config",
]

_PLATFORM = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}


def _dtype(name: str) -> int:
    return int(mc.DataType.Value(f"TYPE_{'STRING' if name == 'BYTES' else name}"))


def _tensors(specs: list[TensorSpec], cls: type) -> list[Any]:
    tensors = []
    for t in specs:
        tensor = cls(name=t.name, data_type=_dtype(t.dtype), dims=t.dims)
        if t.reshape is not None:
            tensor.reshape.CopyFrom(mc.ModelTensorReshape(shape=t.reshape))
        tensors.append(tensor)
    return tensors


def _version_policy(policy: VersionPolicy) -> mc.ModelVersionPolicy:
    if policy.policy == "all":
        return mc.ModelVersionPolicy(all=mc.ModelVersionPolicy.All())
    if policy.policy == "specific":
        return mc.ModelVersionPolicy(
            specific=mc.ModelVersionPolicy.Specific(versions=policy.versions)
        )
    return mc.ModelVersionPolicy(
        latest=mc.ModelVersionPolicy.Latest(num_versions=policy.num_versions)
    )


def _dynamic_batching(batching: DynamicBatching, max_batch_size: int) -> mc.ModelDynamicBatching:
    config = mc.ModelDynamicBatching(
        preferred_batch_size=batching.preferred_batch_size or [max_batch_size],
        max_queue_delay_microseconds=batching.max_queue_delay_microseconds,
        preserve_ordering=batching.preserve_ordering,
    )
    if batching.queue is not None:
        config.default_queue_policy.CopyFrom(queue_policy(batching.queue))
    return config


def queue_policy(queue: QueuePolicy) -> mc.ModelQueuePolicy:
    """Bounded queue: requests beyond max_queue_size or older than the timeout are rejected."""
    return mc.ModelQueuePolicy(
        timeout_action=mc.ModelQueuePolicy.REJECT,
        default_timeout_microseconds=queue.timeout_microseconds,
        allow_timeout_override=queue.allow_timeout_override,
        max_queue_size=queue.max_queue_size,
    )


def _instance_groups(groups: list[InstanceGroup]) -> list[mc.ModelInstanceGroup]:
    return [
        mc.ModelInstanceGroup(
            kind=mc.ModelInstanceGroup.Kind.Value(g.kind), count=g.count, gpus=g.gpus
        )
        for g in groups
    ]


def _warmup(spec: ModelSpec, inputs: list[TensorSpec]) -> list[mc.ModelWarmup]:
    """Zero-data warm-up at batch 1 and at max batch, so the first real request is not slow."""
    if not spec.warmup or any(t.dtype == "BYTES" or -1 in t.dims for t in inputs):
        return []
    sizes = sorted({1, max(spec.max_batch_size, 1)})
    return [
        mc.ModelWarmup(
            name=f"zeros_batch_{size}",
            batch_size=size,
            inputs={
                t.name: mc.ModelWarmup.Input(data_type=_dtype(t.dtype), dims=t.dims, zero_data=True)
                for t in inputs
            },
        )
        for size in sizes
    ]


def model_config(
    spec: ModelSpec,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    parameters: dict[str, str] | None = None,
) -> mc.ModelConfig:
    config = mc.ModelConfig(
        name=spec.name,
        max_batch_size=spec.max_batch_size,
        input=_tensors(inputs, mc.ModelInput),
        output=_tensors(outputs, mc.ModelOutput),
        version_policy=_version_policy(spec.version_policy),
        instance_group=_instance_groups(spec.instance_group),
        model_warmup=_warmup(spec, inputs),
    )
    if spec.backend in _PLATFORM:
        config.platform = _PLATFORM[spec.backend]
    else:
        config.backend = spec.backend
    if spec.max_batch_size > 0 and spec.dynamic_batching.enabled:
        config.dynamic_batching.CopyFrom(
            _dynamic_batching(spec.dynamic_batching, spec.max_batch_size)
        )
    for key, value in sorted({**spec.parameters, **(parameters or {})}.items()):
        config.parameters[key].string_value = value
    return config


def ensemble_config(spec: EnsembleSpec) -> mc.ModelConfig:
    steps = [
        mc.ModelEnsembling.Step(
            model_name=step.model,
            model_version=step.model_version,
            input_map=step.inputs,
            output_map=step.outputs,
        )
        for step in spec.steps
    ]
    return mc.ModelConfig(
        name=spec.name,
        platform="ensemble",
        max_batch_size=spec.max_batch_size,
        input=_tensors(spec.inputs, mc.ModelInput),
        output=_tensors(spec.outputs, mc.ModelOutput),
        ensemble_scheduling=mc.ModelEnsembling(step=steps),
    )


def render(config: mc.ModelConfig) -> str:
    header = "# Generated by `tdeploy build` from the build spec: edit the spec, not this file.\n"
    return header + text_format.MessageToString(config)


def write_config(config: mc.ModelConfig, model_directory: Path) -> Path:
    model_directory.mkdir(parents=True, exist_ok=True)
    path = model_directory / "config.pbtxt"
    path.write_text(render(config))
    return path


def tensor_specs(tensors: Any) -> list[TensorSpec]:
    """ModelInput/ModelOutput messages back to TensorSpecs."""
    names = {v: k.removeprefix("TYPE_") for k, v in mc.DataType.items()}
    specs = []
    for t in tensors:
        dtype = names[t.data_type]
        specs.append(
            TensorSpec(
                name=t.name,
                dtype="BYTES" if dtype == "STRING" else dtype,
                dims=list(t.dims),
                reshape=list(t.reshape.shape) if t.HasField("reshape") else None,
            )
        )
    return specs
