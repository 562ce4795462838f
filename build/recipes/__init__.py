"""Recipes: functions that train the example models offline, deterministically for a seed.

A recipe is named ``module:function`` in models.yaml (e.g. ``digits:train``) and returns a
result with ``metrics`` (held-out quality), ``parity_inputs`` (held-out inputs of the exported
model), ``assets()`` (files other models need, e.g. a vocabulary) and ``golden_cases()``:
held-out inputs with the outputs the source framework computes in-process, per model name,
which ``tdeploy verify`` sends to the live server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["GoldenCase", "resolve_recipe"]


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


def resolve_recipe(reference: str) -> Callable[..., Any]:
    """'digits:train' -> triton_deploy.build.recipes.digits.train"""
    module_name, _, function = reference.partition(":")
    module = importlib.import_module(f"triton_deploy.build.recipes.{module_name}")
    try:
        return getattr(module, function)
    except AttributeError:
        raise AttributeError(
            f"recipe '{reference}': {module.__name__} has no '{function}'"
        ) from None
