"""The chart's Gateway API part (templates/gateway.yaml): a GRPCRoute with weighted backends, one
Service per color, an optional RequestMirror filter; and its checks.

Rendered with Helm's own engine (helm_python). Every GRPCRoute render is validated against the
upstream CRD of Gateway API v1.3.0, vendored in tests/crds/ (tests/gatewayapi.py: its schema with
unknown fields refused, and its CEL rules). With the gateway off, the chart renders exactly what
it rendered before the gateway existed: checked against a copy of the chart with the gateway's
files and values removed.
"""

from __future__ import annotations

import copy
import json
import shutil
from typing import Any

import helm_python
import pytest
import yaml
from charttools import (
    CHART,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    by_kind,
    merge,
    objects,
    render,
    render_error,
    scenario_values,
)
from gatewayapi import GATEWAY_API_VERSION, cel_rule_count, validate_grpcroute

GATEWAY_FILES = ("templates/gateway.yaml", "templates/_gateway.tpl")
GATEWAY_KEYS = ("gateway", "trafficSplit", "shadow")
NOTES_BLOCK = "{{- if .Values.gateway.enabled }}"
PARENT = {"name": "inference-gateway", "namespace": "gateway-system", "sectionName": "grpc"}
BOTH = merge(
    scenario_values("blue-green-both-up"),
    {"activeColor": "blue", "gateway": {"enabled": True, "parentRefs": [PARENT]}},
)


def route(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, Any]:
    routes = by_kind(objects(render(chart, values)), "GRPCRoute")
    assert list(routes) == [FULLNAME]
    validate_grpcroute(routes[FULLNAME])
    return routes[FULLNAME]


def weights(doc: dict[str, Any]) -> dict[str, int]:
    (rule,) = doc["spec"]["rules"]
    return {ref["name"].rsplit("-", 1)[1]: ref["weight"] for ref in rule["backendRefs"]}


# --- off: nothing changes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_without_gateway(tmp_path_factory: pytest.TempPathFactory) -> helm_python.Chart:
    """The chart as it was before the gateway: its files gone, its values and schema removed."""
    copy_dir = tmp_path_factory.mktemp("chart") / "triton-deploy"
    shutil.copytree(CHART, copy_dir)
    for name in GATEWAY_FILES:
        (copy_dir / name).unlink()
    notes = copy_dir / "templates" / "NOTES.txt"
    text = notes.read_text()
    block = text.index(NOTES_BLOCK)  # the gateway's lines close NOTES.txt
    notes.write_text(text[:block])
    values = yaml.safe_load((copy_dir / "values.yaml").read_text())
    schema = json.loads((copy_dir / "values.schema.json").read_text())
    for key in GATEWAY_KEYS:
        del values[key]
        del schema["properties"][key]
    (copy_dir / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    (copy_dir / "values.schema.json").write_text(json.dumps(schema))
    return helm_python.Chart.load(str(copy_dir))


OFF_SCENARIOS = sorted(s for s in SCENARIOS if not scenario_values(s).get("gateway"))


@pytest.mark.parametrize("scenario", OFF_SCENARIOS)
def test_gateway_off_renders_byte_identical_to_the_chart_without_it(
    chart: helm_python.Chart, chart_without_gateway: helm_python.Chart, scenario: str
) -> None:
    values = scenario_values(scenario)
    cases = [values]
    if all((values.get(c) or {}).get("enabled") for c in ("blue", "green")):
        flipped = "blue" if values.get("activeColor") == "green" else "green"
        if (values[flipped].get("replicas", 1)) > 0:
            cases.append(values | {"activeColor": flipped})
    for case in cases:
        # every template, NOTES.txt included, byte for byte
        assert render(chart, case) == render(chart_without_gateway, case)
    assert "gateway.yaml" not in render(chart, values)


def test_the_gateway_scenario_is_covered_by_every_scenario_test() -> None:
    """ci/gateway-canary-values.yaml runs through lint, Kubernetes validation (the GRPCRoute
    against the vendored CRD), the shared invariants and checkov like every other scenario."""
    gateway = scenario_values("gateway-canary")
    assert gateway["gateway"]["enabled"] and gateway["shadow"]["enabled"]
    assert gateway["trafficSplit"] == {"blue": 90, "green": 10}


# --- the route ---------------------------------------------------------------------------------


def test_route_weights_follow_active_color_and_a_flip_moves_every_request(
    chart: helm_python.Chart,
) -> None:
    blue = route(chart, BOTH)
    green = route(chart, BOTH | {"activeColor": "green"})
    assert weights(blue) == {"blue": 100, "green": 0}
    assert weights(green) == {"blue": 0, "green": 100}
    assert blue["spec"]["parentRefs"] == [PARENT]
    (rule,) = blue["spec"]["rules"]
    assert [r["name"] for r in rule["backendRefs"]] == [f"{FULLNAME}-blue", f"{FULLNAME}-green"]
    assert {r["port"] for r in rule["backendRefs"]} == {8001}
    assert "filters" not in rule and "matches" not in rule and "hostnames" not in blue["spec"]
    # The flip changes the two Services' selectors and the route's weights, nothing else.
    a, b = render(chart, BOTH), render(chart, BOTH | {"activeColor": "green"})
    assert {p for p in a if a[p] != b[p]} == {"service.yaml", "gateway.yaml", "NOTES.txt"}
    other = copy.deepcopy(green)
    for ref, was in zip(other["spec"]["rules"][0]["backendRefs"], rule["backendRefs"], strict=True):
        ref["weight"] = was["weight"]
    assert other == blue


def test_each_color_has_its_own_service_that_no_switch_changes(chart: helm_python.Chart) -> None:
    for active in ("blue", "green"):
        services = by_kind(objects(render(chart, BOTH | {"activeColor": active})), "Service")
        assert set(services) == {
            FULLNAME,
            f"{FULLNAME}-preview",
            f"{FULLNAME}-blue",
            f"{FULLNAME}-green",
        }
        for color in ("blue", "green"):
            svc = services[f"{FULLNAME}-{color}"]
            assert svc["spec"]["selector"]["color"] == color
            assert svc["metadata"]["labels"]["triton-deploy/role"] == "backend"
            assert svc["metadata"]["labels"]["color"] == color
            # the traffic ports; the shedder's exporter (shed-metrics) is scraped through the
            # active and preview Services only, so a backend Service does not double it
            active_ports = [
                p for p in services[FULLNAME]["spec"]["ports"] if p["name"] != "shed-metrics"
            ]
            assert svc["spec"]["ports"] == active_ports


def test_traffic_split_sets_the_weights_and_hostnames_matches_are_passed_on(
    chart: helm_python.Chart,
) -> None:
    matches = [
        {"method": {"service": "inference.GRPCInferenceService", "method": "ModelInfer"}},
        {"headers": [{"name": "x-tenant", "value": "ads"}]},
    ]
    values = merge(
        BOTH,
        {
            "trafficSplit": {"blue": 95, "green": 5},
            "gateway": {
                "hostnames": ["triton.ml.example.com", "*.inference.example.com"],
                "matches": matches,
                "labels": {"team": "ml"},
                "annotations": {"example.com/owner": "ml-platform"},
            },
        },
    )
    doc = route(chart, values)
    assert weights(doc) == {"blue": 95, "green": 5}
    assert doc["spec"]["hostnames"] == ["triton.ml.example.com", "*.inference.example.com"]
    assert doc["spec"]["rules"][0]["matches"] == matches
    assert doc["metadata"]["labels"]["team"] == "ml"
    assert doc["metadata"]["annotations"] == {"example.com/owner": "ml-platform"}
    # The split holds whichever color is active: activeColor moves the Services only.
    assert weights(route(chart, values | {"activeColor": "green"})) == {"blue": 95, "green": 5}
    for blue in (0, 100):
        split = {"trafficSplit": {"blue": blue, "green": 100 - blue}}
        assert weights(route(chart, merge(BOTH, split)))["blue"] == blue


def test_shadow_mirrors_to_the_idle_color_with_an_optional_percent(
    chart: helm_python.Chart,
) -> None:
    for active, idle in (("blue", "green"), ("green", "blue")):
        values = merge(BOTH, {"activeColor": active, "shadow": {"enabled": True}})
        doc = route(chart, values)
        (rule,) = doc["spec"]["rules"]
        assert rule["filters"] == [
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": f"{FULLNAME}-{idle}", "port": 8001}},
            }
        ]
        assert weights(doc)[active] == 100  # mirrored, not served
    doc = route(chart, merge(BOTH, {"shadow": {"enabled": True, "percent": 5}}))
    assert doc["spec"]["rules"][0]["filters"][0]["requestMirror"]["percent"] == 5


def test_every_route_the_chart_renders_is_valid_against_the_gateway_api_crd(
    chart: helm_python.Chart,
) -> None:
    """Not vacuous: the CEL rules of the CRD (parentRefs, backendRefs, filters, matches) ran."""
    full = merge(
        BOTH,
        {
            "trafficSplit": {"blue": 50, "green": 50},
            "shadow": {"enabled": True, "percent": 10},
            "gateway": {
                "parentRefs": [PARENT, {"name": "internal", "port": 8443}],
                "hostnames": ["triton.example.com"],
                "matches": [{"method": {"type": "Exact", "service": "a.B", "method": "C"}}],
            },
        },
    )
    doc = route(chart, full)
    assert cel_rule_count(doc) >= 10
    assert GATEWAY_API_VERSION == "v1.3.0"


def test_a_misspelt_route_field_fails_the_crd_validation() -> None:
    """The validator is strict: a field the CRD does not know, or a broken CEL rule, fails."""
    good = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GRPCRoute",
        "metadata": {"name": "r", "namespace": NAMESPACE},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "a", "port": 8001, "weight": 1}]}],
        },
    }
    validate_grpcroute(good)
    typo = merge(
        good, {"spec": {"rules": [{"backendRefs": [{"name": "a", "port": 1, "wieght": 1}]}]}}
    )
    with pytest.raises(AssertionError, match="wieght"):
        validate_grpcroute(typo)
    mirror = copy.deepcopy(good)
    mirror["spec"]["rules"][0]["filters"] = [{"type": "RequestMirror"}]  # no requestMirror
    with pytest.raises(AssertionError, match="requestMirror"):
        validate_grpcroute(mirror)
    both = copy.deepcopy(good)
    both["spec"]["rules"][0]["filters"] = [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "b", "port": 1},
                "percent": 5,
                "fraction": {"numerator": 1, "denominator": 20},
            },
        }
    ]
    with pytest.raises(AssertionError, match="fraction"):
        validate_grpcroute(both)
    too_heavy = merge(
        good, {"spec": {"rules": [{"backendRefs": [{"name": "a", "weight": 10**7}]}]}}
    )
    with pytest.raises(AssertionError, match="weight"):
        validate_grpcroute(too_heavy)


# --- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 101, "10", 12.5, True])
def test_the_schema_refuses_a_weight_outside_0_to_100(chart: helm_python.Chart, bad: Any) -> None:
    error = render_error(chart, merge(BOTH, {"trafficSplit": {"blue": bad, "green": 0}}))
    assert "trafficSplit/blue" in error


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (
            {"blue": 90, "green": 20},
            "trafficSplit.blue (90) + trafficSplit.green (20) = 110, not 100",
        ),
        ({"blue": 40, "green": 40}, "= 80, not 100"),
        ({"blue": 90}, "go together (got blue=90, green=unset)"),
        ({"green": 100}, "go together (got blue=unset, green=100)"),
    ],
)
def test_the_templates_refuse_weights_that_do_not_sum_to_100(
    chart: helm_python.Chart, split: dict[str, int], message: str
) -> None:
    """JSON schema cannot add: the sum is the templates' check (the schema checks ranges)."""
    assert message in render_error(chart, merge(BOTH, {"trafficSplit": split}))


def test_the_gateway_values_fail_clearly_when_they_cannot_work(chart: helm_python.Chart) -> None:
    off = scenario_values("blue-green-both-up")
    assert "exist only with gateway.enabled=true" in render_error(
        chart, merge(off, {"trafficSplit": {"blue": 50, "green": 50}})
    )
    assert "shadow.enabled mirrors the GRPCRoute's requests" in render_error(
        chart, merge(off, {"shadow": {"enabled": True}})
    )
    assert "gateway.parentRefs is required" in render_error(
        chart, merge(off, {"gateway": {"enabled": True}})
    )
    cold = merge(BOTH, {"green": {"replicas": 0}})
    route(chart, cold)  # weight 0 for a color without pods is fine
    assert "send 10 % of requests to green, which runs no pods" in render_error(
        chart, merge(cold, {"trafficSplit": {"blue": 90, "green": 10}})
    )
    assert "mirrors requests to the idle color green, which runs no pods" in render_error(
        chart, merge(cold, {"shadow": {"enabled": True}})
    )
    for bad in ({"parentRefs": [{"namespace": "x"}]}, {"hostnames": ["Not A Host"]}, {"typo": 1}):
        assert "gateway" in render_error(chart, merge(BOTH, {"gateway": bad}))
    assert "shadow/percent" in render_error(
        chart, merge(BOTH, {"shadow": {"enabled": True, "percent": 0}})
    )


def test_release_names_stay_within_63_characters_with_the_gateway(
    chart: helm_python.Chart,
) -> None:
    release = "a-very-long-release-name-for-the-inference-platform-x"
    docs = objects(render(chart, BOTH, release=release))
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63
    full = f"{release}-triton-deploy"[:55].rstrip("-")
    services = set(by_kind(docs, "Service"))
    assert {f"{full}-blue", f"{full}-green"} <= services
    rendered_route = by_kind(docs, "GRPCRoute")[full]
    validate_grpcroute(rendered_route)
    assert release != RELEASE
