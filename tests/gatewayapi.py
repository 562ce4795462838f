"""Gateway API objects checked against the upstream CRD, vendored in tests/crds/ (chart renders
in tests/charts, the emulated API server's dry runs in tests/rollout).

The CRD is kubernetes-sigs/gateway-api release v1.3.0's standard-channel GRPCRoute
(tests/crds/gateway.networking.k8s.io_grpcroutes.v1.3.0.yaml; its header names the commit). An
object is checked the way the API server checks it, as far as this can be done here:

- the ``openAPIV3Schema`` of the served version, with jsonschema; stricter than the API
  server in one way: an unknown field is an error (the server would prune it silently, and a
  misspelt field would then vanish from the route);
- every ``x-kubernetes-validations`` CEL rule on the way (the schema's cross-field rules, e.g.
  "a RequestMirror filter needs requestMirror", "percent and fraction exclude each other"),
  evaluated with cel-python. Rules comparing with ``oldSelf`` (updates only) are skipped.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parent / "crds"
GATEWAY_API_VERSION = "v1.3.0"
GRPCROUTE_CRD = CRD_DIR / f"gateway.networking.k8s.io_grpcroutes.{GATEWAY_API_VERSION}.yaml"


@cache
def grpcroute_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(GRPCROUTE_CRD.read_text()))


def _served_schema(crd: dict[str, Any], version: str) -> dict[str, Any]:
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version and entry.get("served"):
            return dict(entry["schema"]["openAPIV3Schema"])
    raise AssertionError(f"{crd['metadata']['name']} serves no version {version}")


def _closed(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties (unknown fields refused), recursively. ``metadata`` stays open (the API server
    checks it against ObjectMeta, not this schema)."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(value) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@cache
def grpcroute_schema() -> dict[str, Any]:
    """The v1 GRPCRoute's JSON schema, closed (see ``_closed``), for jsonschema."""
    schema = copy.deepcopy(_served_schema(grpcroute_crd(), "v1"))
    closed = dict(_closed(schema))
    closed["properties"]["metadata"] = {"type": "object"}
    closed["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return closed


def _cel_rules(schema: dict[str, Any], value: Any, path: str) -> list[tuple[str, str, Any]]:
    """(path, rule, value) for every CEL rule that applies to ``value`` under ``schema``."""
    found = [
        (path, rule["rule"], value)
        for rule in schema.get("x-kubernetes-validations", [])
        if "oldSelf" not in rule["rule"]
    ]
    if isinstance(value, dict):
        for key, sub in value.items():
            if key in schema.get("properties", {}):
                found += _cel_rules(schema["properties"][key], sub, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += _cel_rules(schema["items"], item, f"{path}[{i}]")
    return found


def defaulted(schema: dict[str, Any], value: Any) -> Any:
    """``value`` with the schema's ``default``s filled in, as the API server does before it
    validates (e.g. a parentRef's group and kind, a backendRef's weight)."""
    if isinstance(value, dict):
        out = dict(value)
        for key, sub in (schema.get("properties") or {}).items():
            if key in out:
                out[key] = defaulted(sub, out[key])
            elif "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        return out
    if isinstance(value, list) and "items" in schema:
        return [defaulted(schema["items"], item) for item in value]
    return value


_CEL_RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
    "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
    "void", "while",
}  # fmt: skip


def _cel_name(name: str) -> str:
    """A property name as Kubernetes exposes it to CEL (``namespace`` -> ``__namespace__``)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


def _cel_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {_cel_name(k): _cel_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cel_value(v) for v in value]
    return value


def cel_errors(doc: dict[str, Any]) -> list[str]:
    """The CEL rules of the CRD that ``doc`` (defaulted first) breaks, as ``path: rule``."""
    import celpy

    schema = _served_schema(grpcroute_crd(), "v1")
    env = celpy.Environment()
    errors = []
    for path, rule, value in _cel_rules(schema, defaulted(schema, doc), "$"):
        program = env.program(env.compile(rule))
        try:
            result = program.evaluate({"self": celpy.json_to_cel(_cel_value(value))})
        except celpy.CELEvalError as exc:
            result = exc
        if isinstance(result, celpy.CELEvalError):
            errors.append(f"{path}: rule could not be evaluated ({result}): {rule}")
        elif not bool(result):
            errors.append(f"{path}: {' '.join(rule.split())}")
    return errors


def cel_rule_count(doc: dict[str, Any]) -> int:
    """How many CEL rules apply to ``doc`` (so a test can show they were not vacuous)."""
    return len(_cel_rules(_served_schema(grpcroute_crd(), "v1"), doc, "$"))


def validate_grpcroute(doc: dict[str, Any]) -> None:
    """Raise AssertionError naming every way ``doc`` breaks the GRPCRoute CRD."""
    assert doc["apiVersion"] == "gateway.networking.k8s.io/v1" and doc["kind"] == "GRPCRoute"
    validator = jsonschema.Draft7Validator(grpcroute_schema())
    problems = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(doc)
    ]
    problems += cel_errors(doc)
    assert not problems, (
        f"GRPCRoute {doc['metadata'].get('name')} is not valid against Gateway API "
        f"{GATEWAY_API_VERSION}:\n" + "\n".join(problems)
    )
