"""What to send a model: the build's golden inputs, else inputs synthesised from its config.

The one place bench, load generator, overload runs, verify, monitor and rollouts get request
inputs from. Golden cases are real rows the build ran through the source framework; a model
without one (a repository made by hand) gets arrays of its config's dtypes and dims (a variable
dim becomes 1), with a fixed seed.

    inputs = request_inputs(Path("model_repository"), "digits", rows=64)
    inputs.arrays, inputs.origin        # {"image": (64, 1, 8, 8) float32}, "golden cases"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import triton_to_np_dtype

from triton_deploy.errors import TritonDeployError

from ._config import read_config
from ._golden import GoldenCase, golden_case_path
from ._layout import CONFIG

GOLDEN = "golden cases"
SYNTHETIC = "synthetic (from the config)"


@dataclass(frozen=True)
class RequestInputs:
    """Input arrays for one model and where they came from (``GOLDEN`` or ``SYNTHETIC``).

    For a batching model every array has the rows on axis 0; for a model without batching the
    arrays are one whole request.
    """

    model: str
    arrays: dict[str, np.ndarray]
    origin: str

    @property
    def golden(self) -> bool:
        return self.origin == GOLDEN


def datatype(value: int) -> str:
    """Triton's wire name of a config data type (FP32, INT64, BYTES, ...)."""
    name = mc.DataType.Name(value).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def synthesise_inputs(config: mc.ModelConfig, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of the config's input dtypes and dims (variable dims 1), ``rows`` rows."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for tensor in config.input:
        kind = datatype(tensor.data_type)
        shape = [d if d > 0 else 1 for d in tensor.dims]
        if config.max_batch_size > 0:
            shape = [rows, *shape]
        if kind == "BYTES":
            words = np.array([b"a", b"b", b"c", b"unseen"], dtype=object)
            arrays[tensor.name] = words[rng.integers(0, len(words), size=shape)]
        elif kind == "BOOL":
            arrays[tensor.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            dtype = triton_to_np_dtype(kind)
            if np.issubdtype(dtype, np.integer):
                arrays[tensor.name] = rng.integers(0, 10, size=shape).astype(dtype)
            else:
                arrays[tensor.name] = rng.random(size=shape).astype(dtype)
    return arrays


def request_inputs(
    repository: Path,
    model: str,
    *,
    rows: int = 256,
    seed: int = 0,
    config: mc.ModelConfig | None = None,
) -> RequestInputs:
    """Inputs for ``model`` of ``repository`` (see the module docstring).

    Golden inputs are used when their tensor names are the config's inputs (at most ``rows``
    rows); otherwise they are synthesised. ``config`` saves reading config.pbtxt again.
    """
    repository = Path(repository)
    if config is None:
        path = repository / model / CONFIG
        if not path.is_file():
            raise TritonDeployError(f"model '{model}' is not in {repository} (no {path})")
        config = read_config(path)
    names = {t.name for t in config.input}
    golden = golden_case_path(repository, model)
    if golden.is_file():
        case = GoldenCase.load(golden)
        if set(case.inputs) == names:
            arrays = {t.name: np.asarray(case.inputs[t.name]) for t in config.input}
            if config.max_batch_size > 0:
                arrays = {k: v[:rows] for k, v in arrays.items()}
            return RequestInputs(model, arrays, GOLDEN)
    return RequestInputs(model, synthesise_inputs(config, rows, seed), SYNTHETIC)
