"""The blue/green rollout driver: plain Helm, the Kubernetes API, and Triton's own signals.

    driver = RolloutDriver(ClusterAccess(namespace="ml"), console=Console(stderr=True))
    record = driver.rollout(RolloutRequest(release="triton", chart="./charts/triton-deploy",
                                           target=Target(model_repository="s3://m/v2")))
    driver.promote("triton")      # after a --manual rollout
    driver.rollback("triton")     # back to the other color (scaled up first when cold)
    driver.status("triton")       # live color, both colors, the last rollout

A rollout is a sequence of steps (``Phase``); the record of where it stands is written to the
cluster before each step changes anything, so running the same command again after an
interruption resumes at that step. Every helm call is logged.

1. read the live color from the active Service's selector and the release's values; take the
   release's Lease (refused when another rollout holds it);
2. ``helm upgrade --reuse-values``: the idle color with the new repository/image, at least as
   many replicas as the live color; a server-side dry run first shows which objects change and
   refuses when anything but the idle color's objects would;
3. wait (watching the Deployment) until the idle color is fully available;
4. pre-promotion analysis through the preview Service: readiness and model versions, parity
   with the golden cases, a short Locust run against an SLO file, the metrics readable;
5. promote (flip ``activeColor``), or stop there with ``--manual`` until ``tdeploy promote``;
6. post-promotion analysis of the new color's own Triton metrics for the analysis window;
   a failure switches traffic back at once;
7. after the scale-down delay (longer than the server's max connection age + grace, so every
   client has moved), scale the old color down (to 0, or keep N replicas).

A failed check before promotion aborts: the live color is never touched, the idle color is
scaled down after the abort delay.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape

from ._analysis import (
    check_metrics_reachable,
    check_parity,
    check_readiness,
    check_slo,
    evaluate_window,
)
from ._canary import TrafficSteps
from ._errors import (
    ClusterError,
    RepositoryRefused,
    RolloutAborted,
    RolloutConflict,
    RolloutError,
    RolloutUsageError,
    SwitchedBack,
)
from ._helm import Helm, HelmCall, parse_manifest
from ._kube import Cluster
from ._lock import RolloutLock, lease_state
from ._metrics import Sample, parse_triton_metrics
from ._options import ClusterAccess, RolloutRequest, repository_values
from ._record import (
    CheckResult,
    CheckStatus,
    Phase,
    RecordStore,
    Result,
    RolloutRecord,
    Settings,
    Target,
    now,
)
from ._release import (
    COLORS,
    ColorValues,
    DeploymentStatus,
    ReleaseObjects,
    color_values,
    connection_drain_s,
    endpoint_propagation_s,
    manifest_changes,
    other_color,
)
from ._traffic import follow_active_values

__all__ = ["RolloutDriver"]

_COLOR_KEYS = ("enabled", "replicas", "modelRepository", "imageTag", "version")


@dataclass
class ReleaseState:
    """A release read from the cluster: values, objects, the live color."""

    release: str
    values: dict[str, Any]  # computed (chart defaults + user-supplied)
    manifest: list[dict[str, Any]]
    objects: ReleaseObjects
    live: str  # from the active Service's selector
    user_values: dict[str, Any] | None = None  # read when needed (deploy step)

    def color(self, color: str) -> ColorValues:
        return color_values(self.values, color)


class RolloutDriver:
    """Runs rollouts, promotions, rollbacks and reports (see the module docstring)."""

    def __init__(
        self,
        access: ClusterAccess,
        *,
        console: Console | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.access = access
        self.console = console or Console(stderr=True)
        self._sleep = sleep
        self._cluster: Cluster | None = None
        self._helm: Helm | None = None
        self.helm_calls: list[HelmCall] = []
        #: --strategy canary / shadow: the release's GRPCRoute (_canary.py).
        self.traffic = TrafficSteps(self)

    # -- connections -------------------------------------------------------------------------------
    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            cluster = Cluster(
                self.access.namespace,
                kubeconfig=self.access.kubeconfig,
                context=self.access.context,
            )
            cluster.ping()
            self._cluster = cluster
        return self._cluster

    @property
    def helm(self) -> Helm:
        if self._helm is None:
            helm = Helm(
                namespace=self.access.namespace,
                kubeconfig=self.access.kubeconfig,
                kube_context=self.access.context,
                executable=self.access.helm,
                on_call=self._log_helm,
            )
            helm.version()
            self._helm = helm
        return self._helm

    def _log_helm(self, call: HelmCall) -> None:
        self.helm_calls.append(call)
        if call.argv[1:2] == ["version"]:
            return
        status = "" if call.returncode == 0 else f"  [red](exit {call.returncode})[/]"
        self.console.print(
            f"[dim]$ {escape(call.command_line())}  ({call.seconds:.1f} s)[/]{status}",
            highlight=False,
            soft_wrap=True,
        )

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()

    def _say(self, text: str, *, head: str = "") -> None:
        """``text`` as is (escaped), after an optional styled ``head`` (rich markup)."""
        self.console.print(head + escape(text), highlight=False, soft_wrap=True)

    # -- reading a release -----------------------------------------------------------------------
    def load(self, release: str) -> ReleaseState:
        _ = self.cluster  # connection problems first, with their own message
        values = self.helm.values(release, computed=True)
        manifest = self.helm.manifest(release)
        objects = ReleaseObjects.from_manifest(manifest, release)
        live = self._live_color(objects, release)
        return ReleaseState(release, values, manifest, objects, live)

    def _live_color(self, objects: ReleaseObjects, release: str) -> str:
        service = self.cluster.get("v1", "services", objects.active_service)
        if service is None:
            raise ClusterError(
                f"the active Service {objects.active_service!r} of release {release!r} does not "
                f"exist in namespace {self.access.namespace!r}"
            )
        live = str((service.get("spec", {}).get("selector") or {}).get("color", ""))
        if live not in COLORS:
            raise ClusterError(
                f"the active Service {objects.active_service!r} selects no color (selector "
                f"{service.get('spec', {}).get('selector')})"
            )
        return live

    def refresh(self, state: ReleaseState, *, manifest: bool = False) -> ReleaseState:
        """The release again after a change: computed values, live color (and manifest)."""
        values = self.helm.values(state.release, computed=True)
        docs = self.helm.manifest(state.release) if manifest else state.manifest
        live = self._live_color(state.objects, state.release)
        return ReleaseState(state.release, values, docs, state.objects, live, state.user_values)

    def user_values(self, state: ReleaseState) -> dict[str, Any]:
        """The release's user-supplied values (``helm get values``), read once."""
        if state.user_values is None:
            state.user_values = self.helm.values(state.release)
        return state.user_values

    def deployment(self, state: ReleaseState, color: str) -> DeploymentStatus:
        name = state.objects.deployment(color)
        return DeploymentStatus.from_object(name, self.cluster.get("apps/v1", "deployments", name))

    def _store(self, state: ReleaseState) -> RecordStore:
        return RecordStore(
            self.cluster, f"{state.objects.active_service}-rollout", release=state.release
        )

    def _lock(self, state: ReleaseState, purpose: str) -> RolloutLock:
        return RolloutLock(self.cluster, state.objects.lock_name, purpose=purpose)

    # -- tdeploy rollout -------------------------------------------------------------------------
    def rollout(self, request: RolloutRequest) -> RolloutRecord:
        """Run (or resume) a rollout; returns the finished record, or raises
        ``RolloutAborted``/``SwitchedBack`` (with the record) when a check failed."""
        request.check()
        digest = self._verify_repository(request)  # before anything changes
        state = self.load(request.release)
        store = self._store(state)
        record = store.current()
        if record is not None and record.in_progress:
            if record.kind != "rollout" or record.target != request.target:
                raise RolloutConflict(
                    f"{record.kind} {record.id} ({record.from_color} → {record.to_color}"
                    + (f", {record.target.describe()}" if record.target else "")
                    + f") is in progress at step {record.phase.value}: resume it with the same "
                    "arguments, `tdeploy promote` it, or `tdeploy abort` it first"
                )
            self._say(
                f"resuming rollout {record.id} ({record.from_color} → {record.to_color}) at "
                f"step {record.phase.value}"
            )
            record.mode = request.mode
            record.settings = request.settings
            record.chart = request.chart
        else:
            live = state.color(state.live)
            if _serves(live, request.target):
                self._say(
                    f"nothing to do: {state.live} is live and already serves "
                    f"{request.target.describe()}"
                )
                return record or self._noop_record(state, request)
            record = RolloutRecord(
                id=f"{now().strftime('%Y%m%d-%H%M%S')}-{other_color(state.live)}",
                release=request.release,
                namespace=self.access.namespace,
                chart=request.chart,
                from_color=state.live,
                to_color=other_color(state.live),
                target=request.target,
                mode=request.mode,
                settings=request.settings,
            )
        record.manifest_digest = digest or record.manifest_digest
        self._preflight(state, record)
        if record.phase is Phase.DEPLOYING:
            self._check_deploy_changes(state, record)  # a dry run: before anything changes
        purpose = f"rollout {record.id} {record.from_color}→{record.to_color}"
        with self._lock(state, purpose) as lock:
            if lock.took_over:
                self._say(f"took over the lock of an interrupted run ({lock.took_over})")
            return self._run(state, store, record, lock, request=request, promote=False)

    def _verify_repository(self, request: RolloutRequest) -> str | None:
        """The target repository, read from its URI as the pods will, against the request's
        policy (`tdeploy serve`'s); returns its manifest digest. Raises RepositoryRefused."""
        from triton_deploy.errors import TritonDeployError
        from triton_deploy.repository import readable, verify_uri

        uri = request.target.model_repository
        policy = request.trust_policy()
        if not request.repository_check:
            self._say(text=f"repository check skipped (--skip-repository-check): {uri}")
            return request.manifest_digest
        if not readable(uri):
            self._say(
                text=f"{uri} cannot be read from here: the pods' verify-repository init "
                "container checks it"
                + (f", pinned to {request.manifest_digest}" if request.manifest_digest else "")
            )
            return request.manifest_digest
        self._say(head="[bold]repository check[/] ", text=f"reading {uri}")
        try:
            report = verify_uri(uri, policy, warn=lambda m: self._say(text=f"warning: {m}"))
        except TritonDeployError as exc:
            raise RepositoryRefused(f"{uri} does not verify; nothing was changed: {exc}") from None
        self._say(text=f"{uri}: {report.summary()}")
        return report.integrity.digest

    def _noop_record(self, state: ReleaseState, request: RolloutRequest) -> RolloutRecord:
        return RolloutRecord(
            id="noop",
            release=request.release,
            namespace=self.access.namespace,
            chart=request.chart,
            from_color=state.live,
            to_color=state.live,
            target=request.target,
            phase=Phase.DONE,
            result=Result.SUCCEEDED,
            message=f"{state.live} already serves {request.target.describe()}",
        )

    def _drain_s(self, state: ReleaseState, color: str) -> float:
        name = state.objects.deployment(color)
        return connection_drain_s(
            state.values, color, self.cluster.get("apps/v1", "deployments", name)
        )

    def _preflight(self, state: ReleaseState, record: RolloutRecord) -> None:
        """Checks of the release that must hold before any change (also when resuming)."""
        settings = record.settings
        drain = self._drain_s(state, record.from_color)
        if settings.scale_down_delay_s is None and drain <= 0:
            raise RolloutUsageError(
                f"{record.from_color} runs without --grpc-max-connection-age "
                "(triton.grpc.maxConnectionAgeMs is 0): its gRPC clients would never move to "
                "the new color. Set triton.grpc.maxConnectionAgeMs, or give --scale-down-delay "
                "explicitly if your clients reconnect by themselves"
            )
        if settings.scale_down_delay_s is not None and settings.scale_down_delay_s < drain:
            raise RolloutUsageError(
                f"--scale-down-delay {settings.scale_down_delay_s:g} s is shorter than "
                f"{record.from_color}'s connection drain time ({drain:g} s: max connection age "
                "x 1.1 + grace): clients still connected to the old color would lose their "
                "connection"
            )
        metrics_on = bool(
            ((state.values.get("triton") or {}).get("metrics") or {}).get("enabled", True)
        )
        if settings.analysis_window_s > 0 and not metrics_on:
            raise RolloutUsageError(
                "post-promotion analysis reads Triton's metrics, but triton.metrics.enabled is "
                "false: enable them, or pass --analysis-window 0 to promote without analysis"
            )
        self.traffic.preflight(state, record)

    def _scale_down_delay(self, state: ReleaseState, record: RolloutRecord, color: str) -> float:
        """The explicit delay, else the color's connection drain time + endpoint propagation."""
        if record.settings.scale_down_delay_s is not None:
            return record.settings.scale_down_delay_s
        return self._drain_s(state, color) + endpoint_propagation_s(state.values)

    # -- step 2: the idle color --------------------------------------------------------------------
    def _idle_overrides(self, state: ReleaseState, record: RolloutRecord) -> dict[str, Any]:
        assert record.target is not None
        live, idle = record.from_color, record.to_color
        live_user = dict(self.user_values(state).get(live) or {})
        block = {k: v for k, v in live_user.items() if k not in _COLOR_KEYS}
        live_values = state.values.get(live) or {}
        live_status = self.deployment(state, live)
        replicas = max(int(live_values.get("replicas") or 0), live_status.desired, 1)
        if record.old_replicas is None:
            record.old_replicas = replicas
        else:
            replicas = record.old_replicas
        autoscaling = bool((state.values.get("autoscaling") or {}).get("enabled"))
        configured = int(live_values.get("replicas") or 0)
        if autoscaling and replicas > configured > 0:
            record.restore_replicas = configured
        block |= {
            "enabled": True,
            "replicas": replicas,
            "modelRepository": repository_values(
                record.target.model_repository,
                dict(live_values.get("modelRepository") or {}),
                record.manifest_digest,
            ),
            "imageTag": record.target.image_tag
            if record.target.image_tag is not None
            else str(live_values.get("imageTag") or ""),
            "version": record.target.version or "",
        }
        return {idle: block}

    def _dry_run(
        self, state: ReleaseState, chart: str, overrides: dict[str, Any], description: str
    ) -> list[dict[str, Any]]:
        release = self.helm.upgrade(
            state.release, chart, overrides, description=description, dry_run=True
        )
        return parse_manifest(str(release.get("manifest", "")))

    def _check_deploy_changes(self, state: ReleaseState, record: RolloutRecord) -> list[Any]:
        overrides = self._idle_overrides(state, record)
        planned = self._dry_run(state, record.chart, overrides, "tdeploy rollout (dry run)")
        changes = manifest_changes(state.manifest, planned)
        outside = [c for c in changes if c.color != record.to_color]
        if outside:
            raise RolloutUsageError(
                f"deploying {record.to_color} would also change objects outside it: "
                + "; ".join(c.describe() for c in outside)
                + ". A rollout only touches the idle color: apply that change with its own "
                "`helm upgrade` first (a chart upgrade, a shared value)"
            )
        if changes:
            self._say(head="[bold]plan[/]: ", text=f"only {record.to_color}'s objects change:")
            for change in changes:
                self._say(f"  {change.describe()}")
        return changes

    def _upgrade(
        self,
        state: ReleaseState,
        record: RolloutRecord,
        lock: RolloutLock,
        overrides: dict[str, Any],
        description: str,
    ) -> None:
        lock.ensure_held()
        self.helm.upgrade(
            state.release,
            record.chart,
            overrides,
            description=f"tdeploy {record.id}: {description}",
        )

    # -- the step machine ----------------------------------------------------------------------------
    def _run(
        self,
        state: ReleaseState,
        store: RecordStore,
        record: RolloutRecord,
        lock: RolloutLock,
        *,
        request: RolloutRequest | None,
        promote: bool,
    ) -> RolloutRecord:
        try:
            while True:
                store.save(record)
                phase = record.phase
                if phase is Phase.DEPLOYING:
                    self._step_deploy(state, record, lock)
                elif phase is Phase.WAITING:
                    self._step_wait(state, record)
                elif phase is Phase.ANALYZING:
                    self._step_analyze(state, record, request)
                elif phase is Phase.AWAITING_PROMOTION:
                    if not (promote or record.mode == "auto"):
                        record.result = Result.AWAITING_PROMOTION
                        record.message = (
                            f"{record.to_color} passed every check and waits: "
                            f"`tdeploy promote --release {record.release} -n {record.namespace}`"
                        )
                        store.save(record)
                        self._say(head="[bold]waiting for promotion[/]: ", text=f"{record.message}")
                        return record
                    record.result = Result.RUNNING
                    record.phase = self.traffic.after_gate(record)
                elif phase is Phase.CANARY:
                    self.traffic.step_canary(state, store, record, lock)
                elif phase is Phase.SHADOWING:
                    self.traffic.step_shadow(state, store, record, lock)
                elif phase is Phase.PROMOTING:
                    self._step_promote(state, record, lock)
                elif phase is Phase.POST_ANALYSIS:
                    self._step_post_analysis(state, store, record)
                elif phase is Phase.SCALING_DOWN:
                    self._step_scale_down(state, record, lock)
                elif phase is Phase.ABORTING:
                    self._step_abort(state, record, lock)
                elif phase is Phase.SWITCHING_BACK:
                    self._step_switch_back(state, store, record, lock)
                else:  # DONE
                    record.finished_at = now()
                    store.save(record, finished=True)
                    return self._finish(record)
        except KeyboardInterrupt:
            with contextlib.suppress(RolloutError):
                store.save(record)
            self._say(
                f"at step {record.phase.value}: run the same command again to resume",
                head="[yellow]interrupted[/] ",
            )
            raise

    def _finish(self, record: RolloutRecord) -> RolloutRecord:
        if record.result is Result.ABORTED:
            raise RolloutAborted(f"rollout aborted: {record.message}", record)
        if record.result is Result.SWITCHED_BACK:
            raise SwitchedBack(f"rollout switched back: {record.message}", record)
        self._say(
            head=f"[bold green]{record.kind} {record.id} succeeded[/]: ", text=f"{record.message}"
        )
        return record

    def _fail(self, record: RolloutRecord, check: CheckResult, *, promoted: bool) -> None:
        record.set_check(check)
        record.message = check.line()
        record.failed_at = now()
        record.phase = Phase.SWITCHING_BACK if promoted else Phase.ABORTING
        self._say(head="[bold red]check failed[/]: ", text=f"{check.line()}")

    def _step_deploy(self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock) -> None:
        overrides = self._idle_overrides(state, record)
        current = self.user_values(state).get(record.to_color) or {}
        if all(current.get(k) == v for k, v in overrides[record.to_color].items()):
            self._say(f"{record.to_color} already has the new values: not upgrading again")
        else:
            self._say(
                head="[bold]deploying[/] ",
                text=f"{record.target.describe() if record.target else ''} to "
                f"{record.to_color} ({overrides[record.to_color]['replicas']} replicas); "
                f"{record.from_color} keeps serving",
            )
            self._upgrade(state, record, lock, overrides, f"deploy {record.to_color}")
        record.phase = Phase.WAITING

    def _wait_available(
        self, state: ReleaseState, color: str, timeout_s: float
    ) -> DeploymentStatus:
        """Watch the color's Deployment until fully available or ``timeout_s``."""
        name = state.objects.deployment(color)
        deadline = time.monotonic() + timeout_s
        seen: dict[str, Any] | None = None
        last_report = 0.0
        with self.console.status(f"waiting for {name}") as spinner:
            while True:
                obj = self.cluster.get("apps/v1", "deployments", name)
                status = DeploymentStatus.from_object(name, obj)
                if status.fully_available:
                    return status
                if status.progress_deadline_exceeded:
                    return status
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return status
                text = f"waiting for {name}: {status.progress()} ({remaining:.0f} s left)"
                spinner.update(text)
                if time.monotonic() - last_report > 30:
                    self._say(text)
                    last_report = time.monotonic()
                seen = self.cluster.watch_changes(
                    "apps/v1", "deployments", name, seen=obj, timeout_s=min(remaining, 10.0)
                )
                if seen is None:
                    self._sleep(0.2)

    def _step_wait(self, state: ReleaseState, record: RolloutRecord) -> None:
        timeout = record.settings.ready_timeout_s
        status = self._wait_available(state, record.to_color, timeout)
        if not status.fully_available:
            why = (
                "progress deadline exceeded"
                if status.progress_deadline_exceeded
                else f"not ready after {timeout:g} s"
            )
            self._fail(
                record,
                CheckResult(
                    name="availability",
                    status=CheckStatus.FAILED,
                    summary=f"{status.name}: {status.progress()} of {status.desired} "
                    f"replicas: {why}",
                    numbers={
                        "desired": status.desired,
                        "available": status.available,
                        "timeout_s": timeout,
                    },
                ),
                promoted=False,
            )
            return
        record.set_check(
            CheckResult(
                name="availability",
                status=CheckStatus.PASSED,
                summary=f"{status.name}: {status.available}/{status.desired} replicas available",
                numbers={"desired": status.desired, "available": status.available},
            )
        )
        self._say(f"{record.to_color} is fully available ({status.progress()})")
        # A rollback goes back to a version that served before: no pre-promotion analysis.
        record.phase = Phase.PROMOTING if record.kind == "rollback" else Phase.ANALYZING

    def preview_url(self, state: ReleaseState, settings: Settings) -> str:
        return settings.preview_url or state.objects.preview_url(self.access.namespace)

    def _step_analyze(
        self, state: ReleaseState, record: RolloutRecord, request: RolloutRequest | None
    ) -> None:
        url = self.preview_url(state, record.settings)
        self._say(
            head="[bold]pre-promotion analysis[/] ", text=f"of {record.to_color} through {url}"
        )
        models = list(request.models) if request else []
        if request is not None and request.golden is not None:
            from triton_deploy.repository import load_golden_cases

            models = sorted(set(models) | set(load_golden_cases(request.golden)))
        checks: list[Callable[[], CheckResult]] = []

        def readiness() -> CheckResult:
            result, versions = check_readiness(url, models)
            record.models = versions
            return result

        checks.append(readiness)
        if request is not None and request.golden is not None:
            golden, tolerances = request.golden, request.tolerances
            checks.append(lambda: check_parity(url, golden, tolerances))
        else:
            checks.append(
                lambda: CheckResult(
                    name="parity",
                    status=CheckStatus.SKIPPED,
                    summary="no --golden given: outputs not compared with the build's golden cases",
                )
            )
        if request is not None and request.slo is not None:
            slo, users, run_time = request.slo, request.slo_users, request.slo_run_time
            reports = request.reports / record.id
            checks.append(
                lambda: check_slo(url, slo, users=users, run_time=run_time, reports=reports)
            )
        else:
            checks.append(
                lambda: CheckResult(
                    name="slo", status=CheckStatus.SKIPPED, summary="no --slo file given"
                )
            )
        if record.settings.analysis_window_s > 0:
            checks.append(
                lambda: check_metrics_reachable(lambda: self._scrape(state, record.to_color))
            )
        for run in checks:
            result = run()
            record.set_check(result)
            mark = {"passed": "[green]passed[/]", "failed": "[bold red]FAILED[/]"}.get(
                result.status.value, "[yellow]skipped[/]"
            )
            self._say(result.summary, head=f"  {result.name}: {mark}: ")
            if result.failed:
                self._fail(record, result, promoted=False)
                return
        record.phase = self.traffic.after_analysis(record)

    def _scrape(self, state: ReleaseState, color: str) -> dict[str, Sample]:
        """Each running pod of ``color``: its Triton counters (through the API server proxy)."""
        samples: dict[str, Sample] = {}
        for pod in self.cluster.pods(state.objects.pod_selector(color)):
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            name = pod["metadata"]["name"]
            port = _container_port(pod, "metrics") or state.objects.metrics_port
            samples[name] = parse_triton_metrics(self.cluster.pod_proxy_get(name, port, "metrics"))
        return samples

    def _step_promote(self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock) -> None:
        new = record.to_color
        status = self.deployment(state, new)
        if not status.fully_available:
            self._fail(
                record,
                CheckResult(
                    name="availability",
                    status=CheckStatus.FAILED,
                    summary=f"{status.name} is no longer fully available ({status.progress()}): "
                    "not promoting",
                    numbers={"desired": status.desired, "available": status.available},
                ),
                promoted=False,
            )
            return
        current = self.refresh(state, manifest=True)
        if current.live != new:
            # With the gateway on, the GRPCRoute's weights follow activeColor (an explicit
            # trafficSplit, e.g. a canary's 100 %, is cleared): one flip moves every request.
            flip = {"activeColor": new} | follow_active_values(current.values)
            planned = self._dry_run(current, record.chart, flip, "tdeploy promote (dry run)")
            outside = [
                c
                for c in manifest_changes(current.manifest, planned)
                if c.kind not in ("Service", "GRPCRoute")
            ]
            if outside:
                raise RolloutUsageError(
                    "promoting would change more than the two Services (and the GRPCRoute): "
                    + "; ".join(c.describe() for c in outside)
                )
            self._say(
                head="[bold]promoting[/] ", text=f"{new}: the active Service now selects {new}"
            )
            self._upgrade(current, record, lock, flip, f"promote {new}")
        record.promoted_at = record.promoted_at or now()
        if record.settings.analysis_window_s > 0 and not record.baseline:
            record.baseline = self._scrape(current, new)
        record.phase = Phase.POST_ANALYSIS

    def _step_post_analysis(
        self, state: ReleaseState, store: RecordStore, record: RolloutRecord
    ) -> None:
        settings = record.settings
        assert record.promoted_at is not None
        if settings.analysis_window_s <= 0:
            record.set_check(
                CheckResult(
                    name="post-promotion",
                    status=CheckStatus.SKIPPED,
                    summary="--analysis-window 0: no post-promotion analysis",
                )
            )
            record.phase = Phase.SCALING_DOWN
            return
        self._say(
            head="[bold]post-promotion analysis[/] ",
            text=f"of {record.to_color} for "
            f"{settings.analysis_window_s:g} s (every {settings.analysis_interval_s:g} s)",
        )
        with self.console.status("post-promotion analysis") as spinner:
            while True:
                elapsed = (now() - record.promoted_at).total_seconds()
                final = elapsed >= settings.analysis_window_s
                try:
                    current = self._scrape(state, record.to_color)
                except RolloutError as exc:
                    current = {}
                    self._say(head="[yellow]metrics not readable[/]: ", text=f"{exc}")
                if not current:
                    result = CheckResult(
                        name="post-promotion",
                        status=CheckStatus.FAILED,
                        summary=f"no metrics from any pod of {record.to_color}",
                    )
                else:
                    result = evaluate_window(
                        record.baseline,
                        current,
                        max_error_ratio=settings.max_error_ratio,
                        min_requests=settings.min_requests,
                        max_p99_ms=settings.max_p99_ms,
                        elapsed_s=elapsed,
                        final=final,
                    )
                record.set_check(result)
                if result.failed:
                    self._fail(record, result, promoted=True)
                    return
                if final:
                    self._say(result.summary, head="  post-promotion: [green]passed[/]: ")
                    record.phase = Phase.SCALING_DOWN
                    return
                spinner.update(f"post-promotion analysis: {result.summary}")
                store.save(record)
                self._sleep(min(settings.analysis_interval_s, settings.analysis_window_s - elapsed))

    def _wait_until(self, moment: datetime, what: str) -> None:
        remaining = (moment - now()).total_seconds()
        if remaining <= 0:
            return
        self._say(f"{what}: waiting {remaining:.0f} s")
        with self.console.status(what) as spinner:
            while remaining > 0:
                spinner.update(f"{what}: {remaining:.0f} s")
                self._sleep(min(remaining, 1.0))
                remaining = (moment - now()).total_seconds()

    def _step_scale_down(
        self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock
    ) -> None:
        assert record.promoted_at is not None
        old = record.from_color
        delay = self._scale_down_delay(state, record, old)
        self._wait_until(
            _plus(record.promoted_at, delay),
            f"scale-down delay ({delay:g} s: clients move off {old} within its connection drain "
            "time)",
        )
        keep = record.settings.keep_old_replicas
        current = self.refresh(state)
        overrides: dict[str, Any] = {}
        if int((current.values.get(old) or {}).get("replicas") or 0) != keep:
            overrides[old] = {"replicas": keep}
        if record.restore_replicas is not None:
            overrides[record.to_color] = {"replicas": record.restore_replicas}
        if overrides:
            self._say(f"scaling {old} to {keep} replicas")
            self._upgrade(current, record, lock, overrides, f"scale {old} to {keep}")
        record.result = Result.SUCCEEDED
        record.message = (
            f"{record.to_color} is live"
            + (f" with {record.target.describe()}" if record.target else "")
            + f"; {old} scaled to {keep}"
        )
        record.phase = Phase.DONE

    def _step_abort(self, state: ReleaseState, record: RolloutRecord, lock: RolloutLock) -> None:
        """Before promotion: the live color never changed; the idle color goes down."""
        self.traffic.reset(state, record, lock)  # a canary's weights, a mirror: back at once
        idle = record.to_color
        failed_at = record.failed_at or now()
        delay = record.settings.abort_scale_down_delay_s
        self._wait_until(_plus(failed_at, delay), f"abort: {idle} scaled down after {delay:g} s")
        current = self.refresh(state)
        if current.live == idle:  # cannot happen before promotion; never scale the live color
            raise RolloutError(f"refusing to scale down {idle}: it is the live color")
        if int((current.values.get(idle) or {}).get("replicas") or 0) != 0:
            self._upgrade(
                current, record, lock, {idle: {"replicas": 0}}, f"abort: scale {idle} to 0"
            )
        record.result = Result.ABORTED
        record.phase = Phase.DONE

    def _step_switch_back(
        self, state: ReleaseState, store: RecordStore, record: RolloutRecord, lock: RolloutLock
    ) -> None:
        """After promotion: traffic back to the old color at once, the new one down later."""
        old, new = record.from_color, record.to_color
        current = self.refresh(state)
        if current.live != old:
            self._say(head="[bold red]switching back[/] ", text=f"to {old}")
            back = {"activeColor": old} | follow_active_values(current.values)
            self._upgrade(current, record, lock, back, f"switch back to {old}")
            record.switched_back_at = now()
            store.save(record)
        switched = record.switched_back_at or now()
        drain = self._drain_s(current, new) + endpoint_propagation_s(current.values)
        delay = max(record.settings.abort_scale_down_delay_s, drain)
        self._wait_until(_plus(switched, delay), f"{new} scaled down after {delay:g} s")
        current = self.refresh(state)
        if int((current.values.get(new) or {}).get("replicas") or 0) != 0 and current.live != new:
            self._upgrade(current, record, lock, {new: {"replicas": 0}}, f"scale {new} to 0")
        record.result = Result.SWITCHED_BACK
        record.phase = Phase.DONE

    # -- tdeploy promote / abort -----------------------------------------------------------------
    def promote(self, release: str, *, chart: str | None = None) -> RolloutRecord:
        state = self.load(release)
        store = self._store(state)
        record = store.current()
        mid = self.traffic.mid_phase(record)  # a canary's steps, a shadow phase: skip the rest
        if record is None or (record.phase is not Phase.AWAITING_PROMOTION and not mid):
            where = (
                f"the last rollout ({record.id}) is {record.result.value} at step "
                f"{record.phase.value}"
                if record
                else "no rollout recorded"
            )
            raise RolloutUsageError(f"nothing to promote: {where}")
        if chart:
            record.chart = chart
        if mid and (held := self.traffic.running_elsewhere(state)) is not None:
            return self.traffic.ask_running(store, record, "promote", held)
        with self._lock(state, f"promote {record.id} → {record.to_color}") as lock:
            if mid:
                self.traffic.skip_to_promotion(state, record, lock)
            return self._run(state, store, record, lock, request=None, promote=True)

    def abort(self, release: str, *, chart: str | None = None) -> RolloutRecord:
        """Stop the rollout in progress: before promotion the idle color is scaled down; after
        it, traffic goes back to the old color first."""
        state = self.load(release)
        store = self._store(state)
        record = store.current()
        if record is None or not record.in_progress:
            raise RolloutUsageError("no rollout in progress to abort")
        if chart:
            record.chart = chart
        if self.traffic.mid_phase(record) and (held := self.traffic.running_elsewhere(state)):
            return self.traffic.ask_running(store, record, "abort", held)
        with self._lock(state, f"abort {record.id}") as lock:
            record.result = Result.RUNNING
            promoted = state.live == record.to_color or record.promoted_at is not None
            if record.phase not in (Phase.ABORTING, Phase.SWITCHING_BACK):
                self._fail(
                    record,
                    CheckResult(
                        name="operator",
                        status=CheckStatus.FAILED,
                        summary="aborted by `tdeploy abort`",
                    ),
                    promoted=promoted,
                )
                record.settings.abort_scale_down_delay_s = 0.0
            return self._run(state, store, record, lock, request=None, promote=False)

    # -- tdeploy rollback ------------------------------------------------------------------------
    def rollback(
        self,
        release: str,
        *,
        chart: str | None = None,
        ready_timeout_s: float = 900.0,
        scale_down_delay_s: float | None = None,
        keep_old_replicas: int = 0,
    ) -> RolloutRecord:
        """Back to the other color: a color flip while it is warm; otherwise scale it up to the
        live color's size, wait until it is fully available, then flip. Never `helm rollback`."""
        state = self.load(release)
        store = self._store(state)
        last = store.current()
        if last is not None and last.in_progress:
            if last.kind == "rollback":  # an interrupted rollback: finish it
                self._say(f"resuming rollback {last.id} at step {last.phase.value}")
                with self._lock(state, f"rollback {last.from_color}→{last.to_color}") as lock:
                    return self._run(state, store, last, lock, request=None, promote=True)
            self._say(f"rollout {last.id} is in progress: aborting it instead")
            return self.abort(release, chart=chart)
        chart = chart or (last.chart if last else None)
        if not chart:
            raise RolloutUsageError("--chart is needed: no earlier rollout recorded the chart")
        live, target = state.live, other_color(state.live)
        if (
            last is not None
            and last.to_color == target
            and last.result
            in (
                Result.ABORTED,
                Result.SWITCHED_BACK,
            )
        ):
            what = last.target.describe() if last.target else "its last version"
            raise RolloutUsageError(
                f"nothing to roll back to: {target} holds {what} from {last.kind} {last.id}, "
                f"which was {last.result.value} ({last.message}); {live} is what served before"
            )
        values = state.color(target)
        if not values.enabled or not (values.repository.get("uri") or values.repository.get("pvc")):
            raise RolloutUsageError(
                f"nothing to roll back to: {target} is not enabled or has no model repository"
            )
        settings = Settings(
            ready_timeout_s=ready_timeout_s,
            scale_down_delay_s=scale_down_delay_s,
            keep_old_replicas=keep_old_replicas,
            analysis_window_s=0,
        )
        record = RolloutRecord(
            id=f"{now().strftime('%Y%m%d-%H%M%S')}-rollback-{target}",
            kind="rollback",
            release=release,
            namespace=self.access.namespace,
            chart=chart,
            from_color=live,
            to_color=target,
            settings=settings,
            phase=Phase.WAITING,
        )
        self._preflight(state, record)
        with self._lock(state, f"rollback {live}→{target}") as lock:
            store.save(record)
            status = self.deployment(state, target)
            live_status = self.deployment(state, live)
            need = max(live_status.desired, 1)
            if status.fully_available and status.desired >= need:
                self._say(f"{target} is warm ({status.progress()}): switching at once")
            else:
                self._say(
                    f"{target} is cold ({status.progress()}): scaling it to {need} replicas first"
                )
                self._upgrade(
                    state, record, lock, {target: {"replicas": need}}, f"scale {target} up"
                )
                status = self._wait_available(state, target, ready_timeout_s)
                if not status.fully_available:
                    self._upgrade(
                        state,
                        record,
                        lock,
                        {target: {"replicas": 0}},
                        f"rollback failed: {target} to 0",
                    )
                    record.result = Result.ABORTED
                    record.message = (
                        f"{target} did not become available ({status.progress()}) within "
                        f"{ready_timeout_s:g} s; {live} still serves"
                    )
                    record.phase = Phase.DONE
                    record.finished_at = now()
                    store.save(record, finished=True)
                    raise RolloutAborted(f"rollback failed: {record.message}", record)
            record.phase = Phase.PROMOTING
            return self._run(state, store, record, lock, request=None, promote=True)

    # -- tdeploy status --------------------------------------------------------------------------
    def status(self, release: str) -> dict[str, Any]:
        state = self.load(release)
        store = self._store(state)
        record = store.current()
        lease = lease_state(
            self.cluster.get("coordination.k8s.io/v1", "leases", state.objects.lock_name)
        )
        colors: dict[str, Any] = {}
        for color in COLORS:
            values = state.color(color)
            deployment = self.deployment(state, color)
            models = (
                record.models
                if record is not None and record.to_color == color and record.models
                else {}
            )
            colors[color] = {
                "role": "active" if color == state.live else "preview",
                "enabled": values.enabled,
                "image": deployment.image or None,
                "image_tag": values.image_tag,
                "model_repository": values.repository_text() if values.enabled else None,
                "manifest_digest": str(values.repository.get("manifestDigest") or "") or None,
                "version": values.version or None,
                "replicas": {
                    "configured": values.replicas,
                    "desired": deployment.desired if deployment.exists else 0,
                    "ready": deployment.ready,
                    "available": deployment.available,
                },
                "models": models,
            }
        active_value = str(state.values.get("activeColor", ""))
        last: dict[str, Any] | None = None
        if record is not None:
            last = record.summary() | {
                "checks": [c.model_dump(mode="json") for c in record.checks],
                "interrupted": record.in_progress
                and lease is None
                and record.result is Result.RUNNING,
            }
        return {
            "release": release,
            "namespace": self.access.namespace,
            "live_color": state.live,
            "active_color_value": active_value,
            "consistent": active_value == state.live,
            "services": {
                "active": state.objects.active_service,
                "preview": state.objects.preview_service,
            },
            "colors": colors,
            "last_rollout": last,
            "lock": lease,
            "history": store.history(),
            "traffic": self.traffic.status(state, record),
        }


def _serves(values: ColorValues, target: Target) -> bool:
    if not values.enabled:
        return False
    uri = target.model_repository
    if uri.startswith("pvc://"):
        if values.repository_text() != uri.rstrip("/"):
            return False
    elif str(values.repository.get("uri", "")) != uri:
        return False
    if target.image_tag is not None and values.image_tag != target.image_tag:
        return False
    return target.version is None or values.version == target.version


def _container_port(pod: dict[str, Any], name: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    return None


def _plus(moment: datetime, seconds: float) -> datetime:
    return moment.astimezone(UTC) + timedelta(seconds=seconds)
