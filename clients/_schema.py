"""What a model accepts and returns, read from the server's model metadata and config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelSchema", "TensorSpec", "format_shape"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output tensor.

    ``shape`` is the full request shape as the server's metadata gives it: ``-1`` is a
    dimension of any size (for a batching model, the first dimension is the batch).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False

    def describe(self, max_batch_size: int = 0) -> str:
        """``IMAGES UINT8 [N, 8, 8]``."""
        return f"{self.name} {self.datatype} {format_shape(self.shape, max_batch_size)}"


@dataclass(frozen=True, slots=True)
class ModelSchema:
    """A model's inputs, outputs, batching limit and available versions.

    Built by ``client.model_schema(name)`` from the server's model metadata and config and
    cached per model; the client refreshes it when the server reports a change.
    """

    name: str
    versions: tuple[str, ...]
    platform: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    _inputs_by_name: dict[str, TensorSpec] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    #: Input names, and those that must be given (not ``optional``).
    names: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())
    required: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    #: Derived data other modules work out once per schema (e.g. validation plans).
    cache: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._inputs_by_name.update({spec.name: spec for spec in self.inputs})
        object.__setattr__(self, "names", frozenset(self._inputs_by_name))
        required = frozenset(spec.name for spec in self.inputs if not spec.optional)
        object.__setattr__(self, "required", required)

    @property
    def batched(self) -> bool:
        """Whether requests carry a leading batch dimension (``max_batch_size > 0``)."""
        return self.max_batch_size > 0

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def input(self, name: str) -> TensorSpec | None:
        return self._inputs_by_name.get(name)

    def sample_shape(self, spec: TensorSpec) -> tuple[int, ...]:
        """The shape of one sample: the request shape without the batch dimension."""
        return spec.shape[1:] if self.batched else spec.shape

    def describe_inputs(self) -> str:
        return ", ".join(spec.describe(self.max_batch_size) for spec in self.inputs)

    @classmethod
    def from_responses(cls, metadata: Any, config: Any) -> ModelSchema:
        """From tritonclient's protobuf ``ModelMetadataResponse`` and ``ModelConfigResponse``."""
        model_config = config.config
        optional = {tensor.name for tensor in model_config.input if tensor.optional}
        max_batch_size = int(model_config.max_batch_size)
        return cls(
            name=str(metadata.name),
            versions=tuple(str(v) for v in metadata.versions),
            platform=str(metadata.platform),
            max_batch_size=max_batch_size,
            inputs=tuple(
                TensorSpec(
                    name=str(t.name),
                    datatype=str(t.datatype),
                    shape=_request_shape(t.shape, max_batch_size),
                    optional=t.name in optional,
                )
                for t in metadata.inputs
            ),
            outputs=tuple(
                TensorSpec(
                    name=str(t.name),
                    datatype=str(t.datatype),
                    shape=_request_shape(t.shape, max_batch_size),
                )
                for t in metadata.outputs
            ),
        )


def _request_shape(shape: Any, max_batch_size: int) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    # Triton's metadata already includes the -1 batch dimension of batching models; be
    # tolerant of servers or proxies that report the config's dims instead.
    if max_batch_size > 0 and (not dims or dims[0] != -1):
        dims = (-1, *dims)
    return dims


def format_shape(shape: tuple[int, ...] | list[int], max_batch_size: int = 0) -> str:
    """``(-1, 8, 8)`` -> ``[N, 8, 8]`` for a batching model (``-1`` elsewhere stays ``-1``)."""
    parts = [str(d) for d in shape]
    if max_batch_size > 0 and parts:
        parts[0] = "N"
    return "[" + ", ".join(parts) + "]"
