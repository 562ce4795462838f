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
from typing import Any

from triton_deploy.build.golden import GoldenCase

__all__ = ["GoldenCase", "resolve_recipe"]


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
