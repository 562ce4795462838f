"""kmock's KubernetesEmulator plus what the rollout tests need of a real API server on top.

MOCKED, because no API server runs here: kmock stores objects but knows no server-side dry run
(it would apply a ``PATCH ?dryRun=All`` for real). ``DryRunEmulator`` answers such a request as
the API server does: the merge patch applied to a copy of the stored object, validated, and the
result returned, nothing stored. GRPCRoutes are validated against the Gateway API CRD vendored in
tests/crds/ (its schema and CEL rules, tests/gatewayapi.py), as the API server validates a
custom resource against its CRD; an invalid one is refused with 422 Invalid, like the server.
Every dry run is recorded in ``dry_runs`` (name, patch, accepted) for the tests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp.web
import attrs
import kmock
from gatewayapi import validate_grpcroute


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``target`` (a copy is returned)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )


@attrs.define(kw_only=True)
class DryRunEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """See the module docstring."""

    dry_runs: list[tuple[str, dict[str, Any], bool]] = attrs.field(factory=list, init=False)
    #: Set by a test: dry runs of GRPCRoutes are refused with this message (as an admission
    #: webhook of a gateway implementation would refuse a change).
    refuse_routes: str | None = attrs.field(default=None, init=False)
    #: ``id()`` of the requests being handled now (see ``_forget_answered_requests``).
    _handling: set[int] = attrs.field(factory=set, init=False)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        self._handling.add(id(request))
        try:
            self._forget_answered_requests()
            dry_run = request.params.get("dryRun") and request.resource is not None and request.name
            if dry_run and request.action == kmock.action.UPDATE:
                return self._dry_run_update(request)
            response: aiohttp.web.StreamResponse = await super()._handle(request)
            return response
        finally:
            self._handling.discard(id(request))

    def _forget_answered_requests(self) -> None:
        """Keep only the requests still being handled in kmock's request log. kmock records
        every request and, for each new one, finds it by scanning that log through each
        reaction's filters (about 50 µs a request logged): the cost of a request grows with the
        requests before it, and a rollout test's thousands of polls (kubelet, Services, gateway,
        driver) made this emulator take most of a core (py-spy: 86 % of one core, 94 % of it in
        that scan; still 19 % of the test process with the newest 16-32 requests kept). Nothing
        here reads the log (the dry runs are kept in ``dry_runs``), and a request being handled
        (a watch, or one waiting for the emulator's lock) stays in it, so it is still found."""
        if len(self._requests) > len(self._handling):
            self._requests[:] = [r for r in self._requests if id(r) in self._handling]

    def _dry_run_update(self, request: Any) -> aiohttp.web.Response:
        key = (request.resource, request.namespace, request.name)
        stored = None
        if key in self.objects:  # ObjectsArray has no .get()
            stored = self.objects[key]
        if stored is None or stored.deleted:
            return _status(404, "NotFound", f"{request.resource.plural} {request.name!r} not found")
        patch = request.data if isinstance(request.data, dict) else json.loads(request.text)
        merged = apply_merge_patch(dict(stored.raw), patch)
        if request.resource.plural == "grpcroutes":
            if self.refuse_routes:
                self.dry_runs.append((request.name, patch, False))
                return _status(400, "BadRequest", self.refuse_routes)
            try:
                validate_grpcroute(merged)
            except AssertionError as exc:
                self.dry_runs.append((request.name, patch, False))
                return _status(422, "Invalid", f"GRPCRoute.gateway.networking.k8s.io {exc}")
        self.dry_runs.append((request.name, patch, True))
        return aiohttp.web.json_response(merged)
