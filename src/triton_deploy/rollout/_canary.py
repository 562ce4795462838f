"""Canary by weight and shadow traffic through the release's GRPCRoute, beside blue/green.

    tdeploy rollout ... --strategy canary --steps 5,25,50,100 --step-duration 2m
    tdeploy rollout ... --strategy shadow --shadow-duration 10m

Both need the chart's Gateway API route (``gateway.enabled``, templates/gateway.yaml): a gateway
balances each request, not each connection, so weights hold for long-lived gRPC channels.

- canary: deploy → wait → pre-promotion analysis → (``--manual``: ``tdeploy promote``) → for each
  step, the route's weights (new color w %, live color 100 - w %), then the new color's own
  Triton metrics judged for ``--step-duration`` (error ratio, p99: the post-promotion limits) →
  promotion (activeColor flips and ``trafficSplit`` is cleared in one upgrade: the route keeps
  100 % on the new color) → post-promotion analysis → scale-down, as blue/green.
- shadow: deploy → wait → pre-promotion analysis → the route mirrors its requests to the new
  color (a RequestMirror filter; the live color serves every answer) for ``--shadow-duration``,
  the new color's error ratio and latency judged, and with ``--shadow-metrics`` the prediction
  divergence that the project's clients measured (``ShadowConfig``) → mirror off →
  (``--manual``: ``tdeploy promote``) → promotion as blue/green.

Every route change is made in four moves: ``helm upgrade --dry-run=server`` (refused unless the
GRPCRoute is the only object that changes); a Kubernetes server-side dry run of the route itself
(``PATCH ?dryRun=All``: the API server, with the Gateway API CRD's schema and rules and any
admission webhook, accepts it and would store these weights); ``helm upgrade``; then a wait
until every parent Gateway accepted the route's new generation (``status.parents``). A failed
step or shadow phase puts the route back at once, without the dry runs (it returns to what
served before): the new color's weight to 0, the mirror off; then it aborts (exit code 3) and
the new color is scaled down after the abort delay.

``tdeploy promote`` and ``tdeploy abort`` work mid-phase. While a rollout process holds the
release's Lease they leave a request in the record's ConfigMap (key ``operator-request``), read
by the running phase between two analyses (promote: skip the remaining steps, or end the shadow
phase, and promote now; abort: weights back, then abort); when no process runs the rollout (it
was interrupted), they act themselves.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._analysis import evaluate_window
from ._errors import ClusterError, LockHeld, RolloutError, RolloutUsageError
from ._lock import lease_state
from ._metrics import Sample
from ._record import CheckResult, CheckStatus, Phase, RecordStore, RolloutRecord, now
from ._release import COLORS, manifest_changes
from ._traffic import (
    GRPCROUTE_API,
    GRPCROUTE_PLURAL,
    StepRecord,
    TrafficState,
    follow_active_values,
    gateway_enabled,
    merge_patch,
    reset_patch,
    route_accepted,
    route_from_manifest,
    route_mirror,
    route_weights,
    split_values,
    values_split,
)

if TYPE_CHECKING:
    from ._driver import ReleaseState, RolloutDriver
    from ._lock import RolloutLock

__all__ = ["REQUEST_KEY", "SHADOW_METRIC", "TrafficSteps", "read_divergence"]

#: Key of the record's ConfigMap where `tdeploy promote/abort` leave a request mid-phase.
REQUEST_KEY = "operator-request"
#: The project client's shadow comparison counter (triton_deploy.clients, ShadowConfig).
SHADOW_METRIC = "tdeploy_client_shadow_comparisons"
_PHASES = (Phase.CANARY, Phase.SHADOWING)


class TrafficSteps:
    """The canary and shadow phases of ``RolloutDriver`` (see the module docstring)."""

    def __init__(self, driver: RolloutDriver) -> None:
        self.driver = driver

    # -- where things are --------------------------------------------------------------------------
    @staticmethod
    def services(state: ReleaseState) -> dict[str, str]:
        """The route's backend Services -> their colors (``<active Service>-<color>``)."""
        return {state.objects.deployment(color): color for color in COLORS}

    @staticmethod
    def route_name(state: ReleaseState) -> str:
        route = route_from_manifest(state.manifest)
        return str(route["metadata"]["name"]) if route else state.objects.active_service

    def live_route(self, state: ReleaseState) -> dict[str, Any]:
        name = self.route_name(state)
        try:
            route = self.driver.cluster.get(GRPCROUTE_API, GRPCROUTE_PLURAL, name)
        except ClusterError as exc:
            raise ClusterError(
                f"cannot read GRPCRoute {name!r}: {exc}. The Gateway API CRDs (v1.1+, standard "
                "channel) must be installed, and the driver needs get/patch on grpcroutes"
            ) from None
        if route is None:
            raise ClusterError(
                f"GRPCRoute {name!r} is in the release's manifest but not in namespace "
                f"{self.driver.access.namespace!r}: apply the release (helm upgrade) first"
            )
        return route

    @staticmethod
    def _state(record: RolloutRecord) -> TrafficState:
        if record.traffic is None:
            strategy = "shadow" if record.settings.strategy == "shadow" else "canary"
            record.traffic = TrafficState(
                strategy=strategy, steps=list(record.settings.canary_steps)
            )
        return record.traffic

    # -- where the blue/green steps branch off -----------------------------------------------------
    @staticmethod
    def uses_route(record: RolloutRecord) -> bool:
        return record.kind == "rollout" and record.settings.strategy in ("canary", "shadow")

    def after_analysis(self, record: RolloutRecord) -> Phase:
        """The phase after a passed pre-promotion analysis."""
        if self.uses_route(record) and record.settings.strategy == "shadow":
            return Phase.SHADOWING
        return Phase.AWAITING_PROMOTION

    def after_gate(self, record: RolloutRecord) -> Phase:
        """The phase after the promotion gate (``--manual`` waits there for `tdeploy promote`)."""
        if self.uses_route(record) and record.settings.strategy == "canary":
            state = self._state(record)
            if state.step < len(state.steps):
                return Phase.CANARY
        return Phase.PROMOTING

    def preflight(self, state: ReleaseState, record: RolloutRecord) -> None:
        """A canary or shadow rollout needs the release's GRPCRoute, live, at 0 % for the
        color to come (also checked when resuming)."""
        if not self.uses_route(record):
            return
        strategy = record.settings.strategy
        if not gateway_enabled(state.values):
            raise RolloutUsageError(
                f"--strategy {strategy} moves traffic through the release's GRPCRoute, but "
                "gateway.enabled is false: set gateway.enabled=true and gateway.parentRefs (a "
                "Gateway API implementation with GRPCRoute) with its own `helm upgrade` first. "
                "Without a gateway only blue/green works (the default strategy): see the README, "
                "'Canary and shadow'"
            )
        if route_from_manifest(state.manifest) is None:
            raise RolloutUsageError(
                "gateway.enabled is true but the release's manifest has no GRPCRoute: upgrade "
                "the release with this chart version first"
            )
        metrics = ((state.values.get("triton") or {}).get("metrics") or {}).get("enabled", True)
        if not metrics:
            raise RolloutUsageError(
                f"--strategy {strategy} judges the new color on Triton's metrics, but "
                "triton.metrics.enabled is false"
            )
        if strategy == "canary" and not record.settings.canary_steps:
            raise RolloutUsageError("--strategy canary needs --steps, e.g. --steps 5,25,50,100")
        live = self.live_route(state)
        if record.traffic is None and record.phase in (Phase.DEPLOYING, Phase.WAITING):
            weights = route_weights(live, self.services(state))
            planned = values_split(state.values)
            for source, split in (("the live GRPCRoute", weights), ("trafficSplit", planned)):
                if split.get(record.to_color, 0) > 0:
                    raise RolloutUsageError(
                        f"{source} already sends {split[record.to_color]} % of requests to "
                        f"{record.to_color}: a {strategy} rollout starts from 0 %. Undo that "
                        f"split first (trafficSplit to null), or `tdeploy abort` what left it"
                    )

    # -- changing the route ------------------------------------------------------------------------
    def set_route(
        self,
        state: ReleaseState,
        record: RolloutRecord,
        lock: RolloutLock,
        overrides: dict[str, Any],
        *,
        what: str,
        weights: Mapping[str, int],
        mirror: tuple[str, int | None] | None,
    ) -> None:
        """Change the route through the release's values (see the module docstring)."""
        driver = self.driver
        current = driver.refresh(state, manifest=True)
        planned = driver._dry_run(current, record.chart, overrides, f"tdeploy {what} (dry run)")
        changes = manifest_changes(current.manifest, planned)
        outside = [c for c in changes if c.kind != "GRPCRoute"]
        if outside:
            raise RolloutUsageError(
                f"{what} would change more than the GRPCRoute: "
                + "; ".join(c.describe() for c in outside)
            )
        route = route_from_manifest(planned)
        if route is None:
            raise RolloutUsageError(f"{what}: the chart rendered no GRPCRoute")
        name = str(route["metadata"]["name"])
        live = self.live_route(current)
        patch = merge_patch({"spec": live.get("spec") or {}}, {"spec": route["spec"]})
        if patch:
            try:
                checked = driver.cluster.patch(
                    GRPCROUTE_API, GRPCROUTE_PLURAL, name, patch, dry_run=True
                )
            except ClusterError as exc:
                raise RolloutError(
                    f"{what}: the API server refused the GRPCRoute change in a server-side dry "
                    f"run: {exc}"
                ) from None
            services = self.services(current)
            got = route_weights(checked, services), route_mirror(checked, services)
            if got != (dict(weights), mirror):
                raise RolloutError(
                    f"{what}: the server-side dry run of GRPCRoute {name} gives weights "
                    f"{got[0]} and mirror {got[1]}, not {dict(weights)} and {mirror}"
                )
            fields = ", ".join(c for change in changes for c in change.fields) or "spec"
            driver._say(
                head="[bold]plan[/]: ",
                text=f"only GRPCRoute/{name} changes ({fields}); the API server accepts it "
                "(server-side dry run)",
            )
            driver._upgrade(current, record, lock, overrides, what)
        self.wait_route(current, record, weights=weights, mirror=mirror)

    def wait_route(
        self,
        state: ReleaseState,
        record: RolloutRecord,
        *,
        weights: Mapping[str, int],
        mirror: tuple[str, int | None] | None,
    ) -> None:
        """Until the live route has these weights and mirror and every parent Gateway accepted
        its generation (``--route-timeout``; 0: only the route itself is checked)."""
        timeout = record.settings.route_timeout_s
        deadline = time.monotonic() + timeout
        services = self.services(state)
        why = ""
        while True:
            live = self.live_route(state)
            got = route_weights(live, services), route_mirror(live, services)
            if got == (dict(weights), mirror):
                accepted, why = route_accepted(live) if timeout > 0 else (True, "")
                if accepted:
                    if why:
                        self.driver._say(f"  GRPCRoute {why}")
                    return
            else:
                why = f"the route has weights {got[0]} and mirror {got[1]}"
            if time.monotonic() >= deadline:
                raise RolloutError(
                    f"GRPCRoute {live['metadata']['name']}: not in effect {timeout:g} s after the "
                    f"change ({why}); is a Gateway API implementation running, and does it "
                    "support GRPCRoute? (--route-timeout 0 skips waiting for its status)"
                )
            self.driver._sleep(0.25)

    def reset(self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock) -> None:
        """Put the route back as it was before this rollout moved it: the new color's weight to
        0 % and the mirror off (``activeColor`` was never flipped). At once: the live GRPCRoute
        is patched first, without dry runs (it returns to what served before), then the
        release's values follow with a helm upgrade that renders that same route. Nothing to do
        when nothing was moved."""
        traffic = record.traffic
        if traffic is None or not self.uses_route(record):
            return
        driver = self.driver
        new, old = record.to_color, record.from_color
        if driver._live_color(state.objects, state.release) != old:
            return  # promoted: activeColor decides now (a switch back flips it)
        said = False

        def say() -> None:
            nonlocal said
            if not said:
                driver._say(
                    head="[bold red]traffic back[/] ",
                    text=f"to {old}: {new} gets 0 % of the GRPCRoute's requests"
                    + (", mirror off" if traffic.mirroring else ""),
                )
            said = True

        # 1. At once, one API call: the live route.
        try:
            live = self.live_route(state)
            patch = reset_patch(live, self.services(state), live=old)
            if patch is not None:
                say()
                lock.ensure_held()
                name = str(live["metadata"]["name"])
                driver.cluster.patch(GRPCROUTE_API, GRPCROUTE_PLURAL, name, patch)
                driver._say(f"  GRPCRoute {name} patched: {old} 100 %, {new} 0 %, no mirror")
        except ClusterError as exc:  # the helm upgrade below does it too, only slower
            driver._say(head="[yellow]warning[/]: ", text=f"patching the route failed: {exc}")
        # 2. The release's values follow (they render that same route).
        current = driver.refresh(state)
        overrides = follow_active_values(current.values)
        if traffic.mirroring:
            before = traffic.shadow_before or {}
            overrides["shadow"] = {key: before.get(key) for key in ("enabled", "percent")}
        if overrides:
            say()
            driver._upgrade(current, record, lock, overrides, f"{new} to 0 %, mirror off")
        traffic.weights = {old: 100, new: 0}
        traffic.mirroring = False
        if not said:
            return
        after = driver.refresh(state)
        mirror = _values_mirror(after.values, after.live)
        try:
            self.wait_route(after, record, weights=values_split(after.values), mirror=mirror)
        except RolloutError as exc:  # the values are back; report a slow gateway, go on
            driver._say(head="[yellow]warning[/]: ", text=str(exc))

    def fail(
        self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock, check: CheckResult
    ) -> None:
        """A failed step or shadow phase: the route back first, then the abort."""
        record.set_check(check)
        self.reset(state, record, lock)
        self.driver._fail(record, check, promoted=False)

    # -- the canary --------------------------------------------------------------------------------
    def step_canary(
        self, state: ReleaseState, store: RecordStore, record: RolloutRecord, lock: RolloutLock
    ) -> None:
        """One step: set the weights (unless resuming it), then judge it."""
        traffic = self._state(record)
        if traffic.step >= len(traffic.steps):
            record.phase = Phase.PROMOTING
            return
        new, old = record.to_color, record.from_color
        weight = traffic.steps[traffic.step]
        want = {new: weight, old: 100 - weight}
        label = f"step {traffic.step + 1}/{len(traffic.steps)}"
        if traffic.step_started_at is None:
            self.driver._say(
                head=f"[bold]canary {label}[/] ",
                text=f"{new} {weight} %, {old} {100 - weight} % of the GRPCRoute's requests",
            )
            # Counted from before the route changes: every request the step sends to the new
            # color is judged, also those while the change is applied.
            traffic.baseline = self.driver._scrape(state, new)
            try:
                self.set_route(
                    state,
                    record,
                    lock,
                    split_values(want),
                    what=f"canary {label}: {new} {weight} %",
                    weights={c: want[c] for c in COLORS},
                    mirror=None,
                )
            except RolloutError as exc:
                check = CheckResult(name="route", status=CheckStatus.FAILED, summary=str(exc))
                self.fail(state, record, lock, check)
                return
            traffic.weights = {c: want[c] for c in COLORS}
            traffic.step_started_at = now()
            traffic.history.append(StepRecord(weight=weight, started_at=traffic.step_started_at))
            store.save(record)
        self._judge_step(state, store, record, lock, label=label, weight=weight)

    def _judge_step(
        self,
        state: ReleaseState,
        store: RecordStore,
        record: RolloutRecord,
        lock: RolloutLock,
        *,
        label: str,
        weight: int,
    ) -> None:
        traffic = self._state(record)
        settings = record.settings
        assert traffic.step_started_at is not None
        name = f"canary {weight}%"
        with self.driver.console.status(f"canary {label}") as spinner:
            while True:
                elapsed = (now() - traffic.step_started_at).total_seconds()
                final = elapsed >= settings.step_duration_s
                action = self.take_request(store, record)
                if action == "abort":
                    self._operator_abort(state, record, lock, f"canary {label} ({weight} %)")
                    return
                if action == "promote":
                    traffic.history[-1].status = "skipped"
                    traffic.history[-1].finished_at = now()
                    self.driver._say(
                        head="[bold]promote[/] ",
                        text=f"asked by `tdeploy promote` at canary {label}: the remaining "
                        "steps are skipped",
                    )
                    record.phase = Phase.PROMOTING
                    return
                result = self._judge(state, record, traffic.baseline, elapsed, final, name=name)
                step = traffic.history[-1]
                step.requests = int(result.numbers.get("requests") or 0)
                step.failures = int(result.numbers.get("failures") or 0)
                p99 = result.numbers.get("p99_ms")
                step.p99_ms = float(p99) if isinstance(p99, int | float) else None
                record.set_check(result)
                if result.failed:
                    step.status, step.finished_at = "failed", now()
                    self.fail(state, record, lock, result)
                    return
                if final:
                    step.status, step.finished_at = "passed", now()
                    self.driver._say(result.summary, head=f"  {name}: [green]passed[/]: ")
                    traffic.step += 1
                    traffic.step_started_at = None
                    traffic.baseline = {}
                    return
                spinner.update(f"canary {label} ({weight} %): {result.summary}")
                store.save(record)
                self.driver._sleep(
                    min(settings.analysis_interval_s, max(settings.step_duration_s - elapsed, 0.05))
                )

    def _judge(
        self,
        state: ReleaseState,
        record: RolloutRecord,
        baseline: Mapping[str, Sample],
        elapsed: float,
        final: bool,
        *,
        name: str,
    ) -> CheckResult:
        """The new color's own metrics since ``baseline``, against the post-promotion limits."""
        settings = record.settings
        try:
            current = self.driver._scrape(state, record.to_color)
        except RolloutError as exc:
            self.driver._say(head="[yellow]metrics not readable[/]: ", text=f"{exc}")
            current = {}
        if not current:
            return CheckResult(
                name=name,
                status=CheckStatus.FAILED,
                summary=f"no metrics from any pod of {record.to_color}",
            )
        result = evaluate_window(
            baseline,
            current,
            max_error_ratio=settings.max_error_ratio,
            min_requests=settings.min_requests,
            max_p99_ms=settings.max_p99_ms,
            elapsed_s=elapsed,
            final=final,
        )
        return result.model_copy(update={"name": name})

    def _operator_abort(
        self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock, where: str
    ) -> None:
        record.settings.abort_scale_down_delay_s = 0.0
        check = CheckResult(
            name="operator",
            status=CheckStatus.FAILED,
            summary=f"aborted by `tdeploy abort` at {where}",
        )
        self.fail(state, record, lock, check)

    # -- the shadow phase --------------------------------------------------------------------------
    def step_shadow(
        self, state: ReleaseState, store: RecordStore, record: RolloutRecord, lock: RolloutLock
    ) -> None:
        traffic = self._state(record)
        settings = record.settings
        new, old = record.to_color, record.from_color
        if traffic.shadow_started_at is None:
            traffic.shadow_before = dict(self.driver.user_values(state).get("shadow") or {})
            percent = settings.shadow_percent
            self.driver._say(
                head="[bold]shadow[/] ",
                text=f"mirroring {'every request' if percent is None else f'{percent} % of the requests'} "
                f"of the GRPCRoute to {new} for {settings.shadow_duration_s:g} s; {old} serves "
                "every answer",
            )
            traffic.baseline = self.driver._scrape(state, new)  # before any copy arrives
            traffic.mirroring = True  # from here on, a reset turns the mirror off again
            try:
                self.set_route(
                    state,
                    record,
                    lock,
                    {"shadow": {"enabled": True, "percent": percent}},
                    what=f"shadow: mirror to {new}",
                    weights={old: 100, new: 0},
                    mirror=(new, percent),
                )
            except RolloutError as exc:
                check = CheckResult(name="route", status=CheckStatus.FAILED, summary=str(exc))
                self.fail(state, record, lock, check)
                return
            traffic.weights = {old: 100, new: 0}
            if settings.shadow_metrics:
                traffic.divergence_baseline = read_divergence(settings.shadow_metrics)
            traffic.shadow_started_at = now()
            store.save(record)
        self._judge_shadow(state, store, record, lock)

    def _judge_shadow(
        self, state: ReleaseState, store: RecordStore, record: RolloutRecord, lock: RolloutLock
    ) -> None:
        traffic = self._state(record)
        settings = record.settings
        assert traffic.shadow_started_at is not None
        with self.driver.console.status("shadow") as spinner:
            while True:
                elapsed = (now() - traffic.shadow_started_at).total_seconds()
                final = elapsed >= settings.shadow_duration_s
                action = self.take_request(store, record)
                if action == "abort":
                    self._operator_abort(state, record, lock, "the shadow phase")
                    return
                if action == "promote":
                    record.set_check(
                        CheckResult(
                            name="shadow",
                            status=CheckStatus.SKIPPED,
                            summary=f"ended after {elapsed:.0f} s by `tdeploy promote`",
                        )
                    )
                    self.reset(state, record, lock)
                    record.phase = Phase.PROMOTING
                    return
                checks = [
                    self._judge(state, record, traffic.baseline, elapsed, final, name="shadow")
                ]
                mirrored = int(checks[0].numbers.get("requests") or 0)
                if final and not checks[0].failed and mirrored < settings.min_requests:
                    checks[0] = checks[0].model_copy(
                        update={
                            "status": CheckStatus.FAILED,
                            "summary": f"only {mirrored} mirrored requests reached "
                            f"{record.to_color} in {elapsed:.0f} s (fewer than --min-requests "
                            f"{settings.min_requests}): nothing to judge. Does the Gateway "
                            "implement GRPCRoute's RequestMirror filter, and is there traffic?",
                        }
                    )
                if settings.shadow_metrics:
                    checks.append(self._divergence(record, final))
                for check in checks:
                    record.set_check(check)
                failed = next((c for c in checks if c.failed), None)
                if failed is not None:
                    self.fail(state, record, lock, failed)
                    return
                if final:
                    for check in checks:
                        self.driver._say(check.summary, head=f"  {check.name}: [green]passed[/]: ")
                    self.reset(state, record, lock)  # the mirror off
                    record.phase = Phase.AWAITING_PROMOTION
                    return
                spinner.update(f"shadow: {checks[0].summary}")
                store.save(record)
                self.driver._sleep(
                    min(
                        settings.analysis_interval_s,
                        max(settings.shadow_duration_s - elapsed, 0.05),
                    )
                )

    def _divergence(self, record: RolloutRecord, final: bool) -> CheckResult:
        """The clients' shadow comparisons since the phase began (``--shadow-metrics``)."""
        settings = record.settings
        traffic = self._state(record)
        try:
            current = read_divergence(settings.shadow_metrics)
        except RolloutError as exc:
            return CheckResult(
                name="shadow-divergence", status=CheckStatus.FAILED, summary=str(exc)
            )
        delta = {
            key: max(current.get(key, 0.0) - traffic.divergence_baseline.get(key, 0.0), 0.0)
            for key in ("match", "divergent", "error")
        }
        compared = delta["match"] + delta["divergent"] + delta["error"]
        bad = delta["divergent"] + delta["error"]
        ratio = bad / compared if compared else 0.0
        numbers: dict[str, float | int | str | None] = {
            "compared": int(compared),
            "divergent": int(delta["divergent"]),
            "errors": int(delta["error"]),
            "ratio": round(ratio, 6),
        }
        text = (
            f"{int(delta['divergent'])} divergent and {int(delta['error'])} failed of "
            f"{int(compared)} calls the clients compared (limit {settings.max_divergence_ratio:.2%})"
        )
        judged = compared >= settings.min_requests or final
        if judged and compared and ratio > settings.max_divergence_ratio:
            return CheckResult(
                name="shadow-divergence",
                status=CheckStatus.FAILED,
                summary=f"{ratio:.2%} of the shadowed calls differ from {record.from_color}'s "
                f"answers beyond the model's tolerance: {text}",
                numbers=numbers,
            )
        if final and not compared:
            return CheckResult(
                name="shadow-divergence",
                status=CheckStatus.FAILED,
                summary="no client compared a call with the shadow in the whole phase: are the "
                f"clients at {', '.join(settings.shadow_metrics)} shadowing to "
                f"{record.to_color}?",
                numbers=numbers,
            )
        return CheckResult(
            name="shadow-divergence",
            status=CheckStatus.PASSED if final else CheckStatus.SKIPPED,
            summary=text,
            numbers=numbers,
        )

    # -- tdeploy promote / abort mid-phase ---------------------------------------------------------
    @staticmethod
    def mid_phase(record: RolloutRecord | None) -> bool:
        return record is not None and record.in_progress and record.phase in _PHASES

    def running_elsewhere(self, state: ReleaseState) -> LockHeld | None:
        """A ``LockHeld`` naming the live process that runs this release's rollout, or None."""
        lease = self.driver.cluster.get("coordination.k8s.io/v1", "leases", state.objects.lock_name)
        held = lease_state(lease)
        if held is None:
            return None
        lock = self.driver._lock(state, "probe")
        if held["holder"] == lock.holder:
            return None
        try:
            lock.acquire()
        except LockHeld as exc:
            return exc
        lock.release()  # it was a dead process of this machine: free after all
        return None

    def skip_to_promotion(
        self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock
    ) -> None:
        """`tdeploy promote` of an interrupted canary or shadow phase: promote now."""
        self.driver._say(
            head="[bold]promote[/] ",
            text=f"{record.to_color} now: the rest of the {record.phase.value} phase is skipped",
        )
        if record.phase is Phase.SHADOWING:
            self.reset(state, record, lock)
        record.phase = Phase.PROMOTING

    def ask_running(
        self, store: RecordStore, record: RolloutRecord, action: str, held: LockHeld
    ) -> RolloutRecord:
        """Leave ``action`` for the rollout process that holds the Lease and wait until it
        acted on it; returns the record as that process left it."""
        self.send_request(store, record, action)
        self.driver._say(
            head=f"[bold]{action}[/] ",
            text=f"requested from the running rollout {record.id} (at {record.phase.value}); "
            "waiting for it to act",
        )
        limit = max(60.0, 3 * record.settings.analysis_interval_s + 30)
        deadline = time.monotonic() + limit
        while True:
            current = store.current()
            if current is None or current.id != record.id:
                raise RolloutError(f"rollout {record.id} is no longer the current one")
            if current.phase not in _PHASES or not current.in_progress:
                return current
            if time.monotonic() > deadline:
                self.clear_request(store)
                raise RolloutError(
                    f"the running rollout did not act on `{action}` within {limit:g} s: {held}"
                )
            self.driver._sleep(0.5)

    @staticmethod
    def send_request(store: RecordStore, record: RolloutRecord, action: str) -> None:
        body = json.dumps({"action": action, "rollout": record.id, "at": now().isoformat()})
        store.cluster.patch("v1", "configmaps", store.name, {"data": {REQUEST_KEY: body}})

    @staticmethod
    def clear_request(store: RecordStore) -> None:
        store.cluster.patch("v1", "configmaps", store.name, {"data": {REQUEST_KEY: None}})

    def take_request(self, store: RecordStore, record: RolloutRecord) -> str | None:
        """A pending `tdeploy promote/abort` for this rollout (consumed), or None."""
        configmap = store.cluster.get("v1", "configmaps", store.name) or {}
        text = (configmap.get("data") or {}).get(REQUEST_KEY)
        if not text:
            return None
        self.clear_request(store)
        try:
            request = json.loads(text)
        except ValueError:
            return None
        if request.get("rollout") != record.id or request.get("action") not in ("promote", "abort"):
            return None
        return str(request["action"])

    # -- tdeploy status --------------------------------------------------------------------------
    def status(self, state: ReleaseState, record: RolloutRecord | None) -> dict[str, Any] | None:
        """The route as the cluster has it (weights, mirror, acceptance) and the phase's steps."""
        if not gateway_enabled(state.values):
            return None
        services = self.services(state)
        out: dict[str, Any] = {"route": self.route_name(state)}
        try:
            live = self.live_route(state)
        except ClusterError as exc:
            out["error"] = str(exc)
        else:
            mirror = route_mirror(live, services)
            accepted, why = route_accepted(live)
            out |= {
                "weights": route_weights(live, services),
                "mirror": {"to": mirror[0], "percent": mirror[1]} if mirror else None,
                "accepted": accepted,
                "status": why,
            }
        if record is not None and record.traffic is not None:
            traffic = record.traffic
            out["phase"] = {
                "strategy": traffic.strategy,
                "steps": traffic.steps,
                "step": traffic.step,
                "history": [s.model_dump(mode="json") for s in traffic.history],
            }
        return out


def _values_mirror(values: Mapping[str, Any], live: str) -> tuple[str, int | None] | None:
    shadow = values.get("shadow") or {}
    if not shadow.get("enabled"):
        return None
    idle = "green" if live == "blue" else "blue"
    percent = shadow.get("percent")
    return idle, int(percent) if percent is not None else None


def read_divergence(urls: list[str], *, timeout_s: float = 5.0) -> dict[str, float]:
    """The clients' shadow comparisons by outcome (``match``, ``divergent``, ``error``), summed
    over every model and every endpoint (Prometheus text from ``ShadowConfig``'s counters)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = {"match": 0.0, "divergent": 0.0, "error": 0.0}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as reply:
                text = reply.read().decode()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RolloutError(f"--shadow-metrics {url}: cannot read it: {exc}") from None
        # No sample yet (no call compared so far) counts as zero: the phase's end says so.
        for family in text_string_to_metric_families(text):
            if family.name != SHADOW_METRIC:
                continue
            for sample in family.samples:
                outcome = sample.labels.get("outcome", "")
                if sample.name.endswith("_total") and outcome in totals:
                    totals[outcome] += float(sample.value)
    return totals
