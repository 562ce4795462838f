"""Recipes: training functions the build runs before it builds, to make model files.

A recipe is declared in the spec with the files it writes::

    recipes:
      - name: ctr
        function: examples/ctr/recipe.py:train      # or package.module:train
        outputs: [xgboost.json, vocabulary.json, features.npz]

The build calls ``train(out: Path, seed: int)``; the function writes those files into ``out``
and returns a ``RecipeResult`` (held-out metrics for the manifest). From there on a recipe's
file is built exactly like a file a user brings (``source: recipe:ctr/xgboost.json``): there is
no second code path.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triton_deploy.build.golden import GoldenCase
from triton_deploy.errors import SpecError

__all__ = ["GoldenCase", "RecipeFunction", "RecipeResult", "resolve_recipe"]


@dataclass
class RecipeResult:
    """What a recipe reports besides its files: held-out quality of what it trained."""

    metrics: dict[str, float] = field(default_factory=dict)


RecipeFunction = Callable[..., Any]


def _load_file_module(path: Path) -> Any:
    name = f"tdeploy_recipe_{abs(hash(str(path))):x}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"recipe file {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the recipe's sibling modules import as usual
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise SpecError(
            f"recipe file {path} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        sys.path.remove(str(path.parent))
    return module


def resolve_recipe(reference: str, base: Path) -> RecipeFunction:
    """'pkg.module:train' or 'path/to/file.py:train' (relative to ``base``) -> the function.

    Every problem (missing file or module, import error, no such function, wrong signature) is
    a ``SpecError`` naming the reference, found before anything is trained.
    """
    target, _, function = reference.rpartition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise SpecError(f"recipe '{reference}': file {path} not found")
        module = _load_file_module(path)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise SpecError(f"recipe '{reference}': module '{target}' not found ({exc})") from None
        except Exception as exc:
            raise SpecError(
                f"recipe '{reference}': module '{target}' failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    found = getattr(module, function, None)
    if not callable(found):
        raise SpecError(f"recipe '{reference}': {target} has no function '{function}'")
    try:
        inspect.signature(found).bind(Path("."), seed=0)
    except TypeError:
        raise SpecError(
            f"recipe '{reference}': {function}() must accept (out: Path, seed: int)"
        ) from None
    return found
