"""Ensemble wiring, validated at build time.

Triton reports a miswired ensemble only when it loads it, in terms of its scheduler. Here a
wiring fault is a build error that names the ensemble, the step and the tensor at fault:
unknown step inputs/outputs, member inputs left unfed, tensors with no producer or with two,
dtype or shape disagreements, cycles, and an ensemble max_batch_size above a member's.
"""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build.configs import tensor_specs
from triton_deploy.build.spec import EnsembleSpec, TensorSpec
from triton_deploy.errors import EnsembleWiringError

__all__ = ["validate_ensemble"]


def _compatible(a: list[int], b: list[int]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _tensor_map(config: mc.ModelConfig, kind: str) -> dict[str, TensorSpec]:
    return {t.name: t for t in tensor_specs(getattr(config, kind))}


def validate_ensemble(spec: EnsembleSpec, members: dict[str, mc.ModelConfig]) -> None:
    where = f"ensemble '{spec.name}'"
    producers: dict[str, tuple[str, TensorSpec]] = {
        t.name: ("the ensemble's inputs", t) for t in spec.inputs
    }
    consumers: list[tuple[str, str, TensorSpec]] = []  # (tensor, consumer, expected)
    edges: dict[int, set[int]] = {i: set() for i in range(len(spec.steps))}
    produced_by_step: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        config = members.get(step.model)
        label = f"{where} step {index + 1} ('{step.model}')"
        if config is None:
            raise EnsembleWiringError(f"{label}: model '{step.model}' is not in the repository")
        if spec.max_batch_size > config.max_batch_size:
            raise EnsembleWiringError(
                f"{where}: max_batch_size {spec.max_batch_size} exceeds that of member "
                f"'{step.model}' ({config.max_batch_size})"
            )
        inputs, outputs = _tensor_map(config, "input"), _tensor_map(config, "output")
        for model_tensor, ensemble_tensor in step.inputs.items():
            if model_tensor not in inputs:
                raise EnsembleWiringError(
                    f"{label}: input_map names '{model_tensor}', which is not an input of "
                    f"'{step.model}' (its inputs: {sorted(inputs)})"
                )
            consumers.append((ensemble_tensor, label, inputs[model_tensor]))
        unfed = sorted(set(inputs) - set(step.inputs))
        if unfed:
            raise EnsembleWiringError(f"{label}: input(s) {unfed} of '{step.model}' are not fed")
        for model_tensor, ensemble_tensor in step.outputs.items():
            if model_tensor not in outputs:
                raise EnsembleWiringError(
                    f"{label}: output_map names '{model_tensor}', which is not an output of "
                    f"'{step.model}' (its outputs: {sorted(outputs)})"
                )
            if ensemble_tensor in producers:
                raise EnsembleWiringError(
                    f"{where}: tensor '{ensemble_tensor}' has two producers: "
                    f"{producers[ensemble_tensor][0]} and {label}"
                )
            producers[ensemble_tensor] = (label, outputs[model_tensor])
            produced_by_step[ensemble_tensor] = index
    for index, step in enumerate(spec.steps):
        for ensemble_tensor in step.inputs.values():
            if ensemble_tensor in produced_by_step:
                edges[produced_by_step[ensemble_tensor]].add(index)
    for tensor, consumer, expected in consumers:
        if tensor not in producers:
            raise EnsembleWiringError(f"{consumer}: tensor '{tensor}' has no producer")
        _agree(tensor, producers[tensor], consumer, expected)
    for output in spec.outputs:
        if output.name not in producers:
            raise EnsembleWiringError(f"{where}: output tensor '{output.name}' has no producer")
        _agree(output.name, producers[output.name], f"{where} outputs", output)
    _no_cycle(where, spec, edges)


def _agree(
    tensor: str, producer: tuple[str, TensorSpec], consumer: str, expected: TensorSpec
) -> None:
    source, given = producer
    if given.dtype != expected.dtype:
        raise EnsembleWiringError(
            f"tensor '{tensor}': {source} makes {given.dtype}, {consumer} expects {expected.dtype}"
        )
    if not _compatible(given.dims, expected.dims):
        raise EnsembleWiringError(
            f"tensor '{tensor}': {source} makes dims {given.dims}, {consumer} expects {expected.dims}"
        )


def _no_cycle(where: str, spec: EnsembleSpec, edges: dict[int, set[int]]) -> None:
    state: dict[int, int] = {}

    def visit(node: int) -> None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise EnsembleWiringError(
                    f"{where}: steps '{spec.steps[node].model}' and '{spec.steps[nxt].model}' form a cycle"
                )
            if nxt not in state:
                visit(nxt)
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)
