"""Load-test configuration files: where they live, how they are read, how errors are told.

Each environment (``local``, ``staging``) has two YAML files beside this module:

    loadtests/slo/<environment>.yaml   service-level objectives (``objectives.SloSpec``)
    loadtests/mix/<environment>.yaml   what the simulated clients send (``taskmix.TaskMix``)

Both are validated with pydantic before a run starts; a bad file raises
``LoadTestConfigError`` naming the file, the key and the reason. Numpy and pydantic only: this
module never imports locust (importing locust monkey-patches the whole process for gevent).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from triton_deploy.errors import TritonDeployError

__all__ = [
    "ENVIRONMENTS",
    "LOCUSTFILE",
    "LoadTestConfigError",
    "load_yaml_model",
    "mix_path",
    "parse_headers",
    "slo_path",
]

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
#: Environments with files of their own; others are given with --slo-file / --mix-file.
ENVIRONMENTS = ("local", "staging")

M = TypeVar("M", bound=BaseModel)


class LoadTestConfigError(TritonDeployError):
    """A load-test file or option is invalid: the message names the file, the key and why."""


def slo_path(environment: str) -> Path:
    return HERE / "slo" / f"{environment}.yaml"


def mix_path(environment: str) -> Path:
    return HERE / "mix" / f"{environment}.yaml"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def load_yaml_model(path: Path, model: type[M], what: str) -> M:
    """Read ``path`` and validate it as ``model``; ``LoadTestConfigError`` on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LoadTestConfigError(f"{what} file {path}: no such file") from None
    except OSError as exc:
        raise LoadTestConfigError(f"{what} file {path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise LoadTestConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, Mapping):
        raise LoadTestConfigError(
            f"{path}: a {what} file must be a mapping of keys to values, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise LoadTestConfigError(f"{path}: " + "; ".join(_reasons(exc))) from None


def _reasons(exc: ValidationError) -> list[str]:
    reasons = []
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif (
            error["type"] != "missing"
            and "input" in error
            and not isinstance(error["input"], Mapping)
        ):
            message += f" (got {error['input']!r})"
        reasons.append(f"{key}: {message}")
    return reasons


def parse_headers(text: str | None) -> dict[str, str]:
    """``"name=value,name2=value2"`` -> a dict of gRPC metadata (keys lowercased)."""
    headers: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LoadTestConfigError(f"--grpc-header takes NAME=VALUE[,NAME=VALUE], got {item!r}")
        headers[name.strip().lower()] = value.strip()
    return headers
