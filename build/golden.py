"""Golden cases: real inputs and the outputs the source framework computed for them at build time.

The build keeps one ``GoldenCase`` per served model (and ensemble); ``tdeploy verify`` sends the
inputs to a live server and compares, ``tdeploy monitor`` uses them as the reference
distribution, and the bench uses them as realistic payloads. Only numpy is needed to read them.

    cases = load_golden_cases(Path("model_repository"))   # {model name: GoldenCase}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GoldenCase", "artifacts_directory", "golden_case_path", "load_golden_cases"]


@dataclass
class GoldenCase:
    """Inputs for one served model and the outputs its source framework gives for them."""

    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    # Outputs compared exactly (integers); others within the model's tolerance.
    exact: list[str] = field(default_factory=list)

    def save(self, path: Any) -> None:
        arrays = {f"in.{k}": v for k, v in self.inputs.items()}
        arrays |= {f"out.{k}": v for k, v in self.expected.items()}
        arrays["exact"] = np.array(self.exact, dtype=object)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Any) -> GoldenCase:
        with np.load(path, allow_pickle=True) as data:
            inputs = {k[3:]: data[k] for k in data.files if k.startswith("in.")}
            expected = {k[4:]: data[k] for k in data.files if k.startswith("out.")}
            exact = [str(x) for x in data["exact"]]
        return cls(inputs, expected, exact)


def artifacts_directory(repository: Path) -> Path:
    """Where the build keeps what Triton must not see (golden verification cases)."""
    repository = Path(repository).resolve()
    return repository.parent / ".tdeploy" / repository.name


def golden_case_path(repository: Path, model: str) -> Path:
    return artifacts_directory(repository) / f"{model}.npz"


def load_golden_cases(repository: Path) -> dict[str, GoldenCase]:
    """Every golden case the last build of ``repository`` kept, by model name."""
    directory = artifacts_directory(repository)
    if not directory.is_dir():
        return {}
    return {path.stem: GoldenCase.load(path) for path in sorted(directory.glob("*.npz"))}
