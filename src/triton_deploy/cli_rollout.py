"""``tdeploy rollout``, ``promote``, ``abort``, ``rollback`` and ``status``: blue/green rollouts
of a triton-deploy Helm release.

Registered on the main app by ``cli.py`` (``cli_rollout.register(app)``). Thin wrappers over
``triton_deploy.rollout.RolloutDriver``, imported when a command runs (it needs the ``k8s``
extra: the command says how to install it when missing). Progress and every helm call go to
stderr; ``--json`` prints the result on stdout. Errors go through the app's one error exit.

Exit codes: 0 done (or waiting for promotion with ``--manual``); 1 refused or failed before
anything changed (bad arguments, unknown release, unreachable cluster, lock held); 3 aborted by
a failed check before promotion (the live color kept serving); 4 switched back after
promotion.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from triton_deploy.cli_repository import CertificateChain, Identity, OidcIssuer, PublicKey
from triton_deploy.errors import TritonDeployError

if TYPE_CHECKING:
    from triton_deploy.rollout import ClusterAccess, RolloutDriver, RolloutRecord

__all__ = ["abort", "promote", "register", "rollback", "rollout", "status"]

Release = Annotated[
    str, typer.Option("--release", help="Helm release name.", envvar="TDEPLOY_RELEASE")
]
Namespace = Annotated[
    str,
    typer.Option("--namespace", "-n", help="Namespace of the release.", envvar="TDEPLOY_NAMESPACE"),
]
Kubeconfig = Annotated[
    str | None,
    typer.Option(help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)."),
]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context.")]
HelmBinary = Annotated[
    str, typer.Option("--helm", help="The helm executable.", envvar="TDEPLOY_HELM")
]
Chart = Annotated[
    str | None,
    typer.Option(
        help="The chart to upgrade with (path or reference); default: the one the last rollout "
        "used.",
        envvar="TDEPLOY_CHART",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _rollout_package() -> Any:
    if importlib.util.find_spec("kubernetes") is None:
        from triton_deploy.clients import UsageError

        raise UsageError(
            "tdeploy rollout/promote/abort/rollback/status need the k8s extra: "
            "pip install 'triton-deploy[k8s]' (and the helm CLI)"
        )
    import triton_deploy.rollout

    return triton_deploy.rollout


def _access(
    namespace: str, kubeconfig: str | None, context: str | None, helm: str
) -> ClusterAccess:
    rollout = _rollout_package()
    try:
        access: ClusterAccess = rollout.ClusterAccess(
            namespace=namespace, kubeconfig=kubeconfig, context=context, helm=helm
        )
    except ValueError:
        raise rollout.RolloutUsageError(
            f"--namespace {namespace!r} is not a valid namespace name"
        ) from None
    return access


def _driver(access: ClusterAccess, console: Console) -> RolloutDriver:
    driver: RolloutDriver = _rollout_package().RolloutDriver(access, console=console)
    return driver


def _duration(text: str | None, option: str) -> float | None:
    return None if text is None else float(_rollout_package().parse_duration(text, option))


def _record_json(record: RolloutRecord | None, driver: RolloutDriver) -> dict[str, Any]:
    data = record.model_dump(mode="json") if record is not None else {}
    data["helm_calls"] = [
        call.to_dict() for call in driver.helm_calls if call.argv[1:2] != ["version"]
    ]
    return data


def _finish(
    driver: RolloutDriver,
    console: Console,
    run: Any,
    *,
    as_json: bool,
    failed_ok: bool = False,
) -> None:
    """Run ``run()``; print the record (``--json``); a failed check exits with its own code
    (3 aborted, 4 switched back), any other error goes to the app's error exit (1)."""
    failed = _rollout_package().RolloutFailed
    record: RolloutRecord | None = None
    code = 0
    try:
        record = run()
    except failed as exc:
        record = exc.record
        console.print(f"[bold red]{escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        code = 0 if failed_ok else int(exc.exit_code)
    except TritonDeployError as exc:
        if as_json:
            print(json.dumps({"error": str(exc)} | _record_json(None, driver), indent=2))
        raise
    finally:
        driver.close()
    if as_json:
        print(json.dumps(_record_json(record, driver), indent=2))
    if code:
        raise typer.Exit(code=code)


def rollout(
    release: Release,
    namespace: Namespace,
    model_repository: Annotated[
        str,
        typer.Option(
            help="The new model repository: s3://, gs://, as:// URI, or pvc://CLAIM or pvc://CLAIM/SUB/PATH."
        ),
    ],
    chart: Annotated[
        str,
        typer.Option(help="The chart to upgrade with (path or reference).", envvar="TDEPLOY_CHART"),
    ],
    image_tag: Annotated[
        str | None,
        typer.Option(help="Triton image tag of the new color (default: the live color's)."),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Version label of the new color (app.kubernetes.io/version).")
    ] = None,
    manual: Annotated[
        bool,
        typer.Option(
            "--manual/--auto-promote",
            help="Stop after the pre-promotion analysis and wait for `tdeploy promote`.",
        ),
    ] = False,
    golden: Annotated[
        Path | None,
        typer.Option(
            help="Local build of the new version (`tdeploy build --out DIR`): its golden cases "
            "are checked through the preview Service."
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(help="A build spec whose tolerances override the golden cases' own."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="A model that must be ready (repeatable).")
    ] = None,
    slo: Annotated[
        Path | None,
        typer.Option(help="SLO file for a short Locust run against the preview Service."),
    ] = None,
    slo_users: Annotated[int, typer.Option(help="Locust users of the SLO run.")] = 8,
    slo_run_time: Annotated[str, typer.Option(help="Duration of the SLO run.")] = "30s",
    preview_url: Annotated[
        str | None,
        typer.Option(
            help="gRPC address of the preview Service from here (default: its in-cluster DNS "
            "name; e.g. localhost:18001 with `kubectl port-forward svc/<release>-...-preview "
            "18001:8001`).",
            envvar="TDEPLOY_PREVIEW_URL",
        ),
    ] = None,
    ready_timeout: Annotated[
        str, typer.Option(help="How long the new color may take to become available.")
    ] = "15m",
    analysis_window: Annotated[
        str, typer.Option(help="Post-promotion analysis window (0: none).")
    ] = "5m",
    analysis_interval: Annotated[str, typer.Option(help="How often the metrics are read.")] = "10s",
    max_error_ratio: Annotated[
        float, typer.Option(help="Post-promotion: failed/all requests above this switches back.")
    ] = 0.01,
    min_requests: Annotated[
        int, typer.Option(help="Post-promotion: requests needed before a ratio is judged.")
    ] = 50,
    max_p99_ms: Annotated[
        float | None,
        typer.Option(
            help="Post-promotion: p99 limit (needs --metrics-config=summary_latencies=true)."
        ),
    ] = None,
    scale_down_delay: Annotated[
        str | None,
        typer.Option(
            help="After promotion, before the old color is scaled down (default: its connection "
            "drain time, max connection age x 1.1 + grace, + shutdown.endpointPropagationSeconds; "
            "at least the drain time)."
        ),
    ] = None,
    abort_scale_down_delay: Annotated[
        str, typer.Option(help="After a failed check, before the new color is scaled down.")
    ] = "30s",
    keep_old_replicas: Annotated[
        int, typer.Option(help="Replicas the old color keeps after a successful rollout.")
    ] = 0,
    reports: Annotated[Path, typer.Option(help="Folder for the SLO run's reports.")] = Path(
        "reports/rollout"
    ),
    strategy: Annotated[
        str,
        typer.Option(
            help="bluegreen (one flip of the Services), canary (the GRPCRoute's weights step by "
            "step, --steps) or shadow (the GRPCRoute mirrors requests to the new color first, "
            "--shadow-duration). canary and shadow need the chart's gateway.enabled."
        ),
    ] = "bluegreen",
    steps: Annotated[
        str | None,
        typer.Option(
            help="Canary weights of the new color in percent, ending at 100: 5,25,50,100."
        ),
    ] = None,
    step_duration: Annotated[
        str, typer.Option(help="How long each canary step is judged on the new color's metrics.")
    ] = "2m",
    shadow_duration: Annotated[
        str, typer.Option(help="How long requests are mirrored to the new color and judged.")
    ] = "10m",
    shadow_percent: Annotated[
        int | None,
        typer.Option(
            help="Percent of requests mirrored (Gateway API v1.3+ percent; default: every one)."
        ),
    ] = None,
    shadow_metrics: Annotated[
        list[str] | None,
        typer.Option(
            help="Prometheus endpoint of clients that shadow calls (ShadowConfig): their "
            "prediction divergence is judged too (repeatable)."
        ),
    ] = None,
    max_divergence_ratio: Annotated[
        float,
        typer.Option(help="Shadow: divergent (or failed) / compared calls above this aborts."),
    ] = 0.0,
    route_timeout: Annotated[
        str,
        typer.Option(
            help="How long the Gateway may take to accept a route change (0: do not wait for "
            "the route's status)."
        ),
    ] = "2m",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    helm: HelmBinary = "helm",
    as_json: Json = False,
    skip_repository_check: Annotated[
        bool,
        typer.Option(
            help="Do not read the repository from its URI before the rollout (this machine "
            "cannot reach the bucket); the pods' verify-repository init container still checks it.",
            envvar="TDEPLOY_SKIP_REPOSITORY_CHECK",
        ),
    ] = False,
    manifest_digest: Annotated[
        str | None,
        typer.Option(
            help="Require exactly this repository (sha256 of its manifest.json); pinned in the "
            "chart's <color>.modelRepository.manifestDigest (sources sync and pvc).",
        ),
    ] = None,
    require_signature: Annotated[
        bool, typer.Option(help="Refuse a repository without a valid signature (model.sig).")
    ] = False,
    public_key: PublicKey = None,
    certificate_chain: CertificateChain = None,
    signer_identity: Identity = None,
    signer_oidc_issuer: OidcIssuer = None,
) -> None:
    """Roll a new model repository (and image) out to the idle color, check it, promote it.

    [dim]tdeploy rollout --release triton -n ml --chart ./charts/triton-deploy \\
        --model-repository s3://models/triton/v2 --golden model_repository \\
        --slo loadtests/slo/staging.yaml[/]

    Canary by weight or shadow first, through the chart's GRPCRoute (gateway.enabled):
    [dim]--strategy canary --steps 5,25,50,100 --step-duration 2m[/],
    [dim]--strategy shadow --shadow-duration 10m[/].
    """
    console = Console(stderr=True)
    access = _access(namespace, kubeconfig, context, helm)
    rollout_package = _rollout_package()
    try:
        settings = rollout_package.Settings(
            ready_timeout_s=_duration(ready_timeout, "--ready-timeout") or 0.0,
            analysis_window_s=_duration(analysis_window, "--analysis-window") or 0.0,
            analysis_interval_s=_duration(analysis_interval, "--analysis-interval") or 1.0,
            max_error_ratio=max_error_ratio,
            min_requests=min_requests,
            max_p99_ms=max_p99_ms,
            scale_down_delay_s=_duration(scale_down_delay, "--scale-down-delay"),
            abort_scale_down_delay_s=_duration(abort_scale_down_delay, "--abort-scale-down-delay")
            or 0.0,
            keep_old_replicas=keep_old_replicas,
            preview_url=preview_url,
            **_strategy_settings(
                strategy,
                steps,
                step_duration,
                shadow_duration,
                shadow_percent,
                shadow_metrics,
                max_divergence_ratio,
                route_timeout,
            ),
        )
        request = rollout_package.RolloutRequest(
            release=release,
            chart=chart,
            target=rollout_package.Target(
                model_repository=model_repository, image_tag=image_tag, version=version
            ),
            mode="manual" if manual else "auto",
            settings=settings,
            slo=slo,
            slo_users=slo_users,
            slo_run_time=slo_run_time,
            golden=golden,
            spec=spec,
            tolerances=_spec_tolerances(spec),
            repository_check=not skip_repository_check,
            manifest_digest=manifest_digest,
            require_signature=require_signature,
            public_key=public_key,
            certificate_chain=certificate_chain or [],
            signer_identity=signer_identity,
            signer_oidc_issuer=signer_oidc_issuer,
            models=model or [],
            reports=reports,
        )
    except ValueError as exc:  # pydantic's, naming the option's field
        raise rollout_package.RolloutUsageError(_pydantic_message(exc)) from None
    driver = _driver(access, console)
    _finish(driver, console, lambda: driver.rollout(request), as_json=as_json)


def _strategy_settings(
    strategy: str,
    steps: str | None,
    step_duration: str,
    shadow_duration: str,
    shadow_percent: int | None,
    shadow_metrics: list[str] | None,
    max_divergence_ratio: float,
    route_timeout: str,
) -> dict[str, Any]:
    """``Settings`` fields of --strategy canary / shadow (checked by ``RolloutRequest.check``)."""
    rollout_package = _rollout_package()
    if strategy not in ("bluegreen", "canary", "shadow"):
        raise rollout_package.RolloutUsageError(
            f"--strategy must be bluegreen, canary or shadow, got {strategy!r}"
        )
    return {
        "strategy": strategy,
        "canary_steps": rollout_package.parse_steps(steps) if steps else [],
        "step_duration_s": _duration(step_duration, "--step-duration") or 0.0,
        "shadow_duration_s": _duration(shadow_duration, "--shadow-duration") or 0.0,
        "shadow_percent": shadow_percent,
        "shadow_metrics": shadow_metrics or [],
        "max_divergence_ratio": max_divergence_ratio,
        "route_timeout_s": _duration(route_timeout, "--route-timeout") or 0.0,
    }


def promote(
    release: Release,
    namespace: Namespace,
    chart: Chart = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    helm: HelmBinary = "helm",
    as_json: Json = False,
) -> None:
    """Promote the color a --manual rollout left waiting, and finish the rollout.

    Then the post-promotion analysis and the old color's scale-down run as the rollout asked.
    During a canary's steps or a shadow phase, the remaining steps (or the rest of the phase)
    are skipped: the new color is promoted now.
    """
    console = Console(stderr=True)
    driver = _driver(_access(namespace, kubeconfig, context, helm), console)
    _finish(driver, console, lambda: driver.promote(release, chart=chart), as_json=as_json)


def abort(
    release: Release,
    namespace: Namespace,
    chart: Chart = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    helm: HelmBinary = "helm",
    as_json: Json = False,
) -> None:
    """Stop the rollout in progress: the old color serves, the new one is scaled down.

    Traffic is switched back first when the new color had already been promoted.
    """
    console = Console(stderr=True)
    driver = _driver(_access(namespace, kubeconfig, context, helm), console)
    _finish(
        driver, console, lambda: driver.abort(release, chart=chart), as_json=as_json, failed_ok=True
    )


def rollback(
    release: Release,
    namespace: Namespace,
    chart: Chart = None,
    ready_timeout: Annotated[
        str, typer.Option(help="How long a cold color may take to become available.")
    ] = "15m",
    scale_down_delay: Annotated[
        str | None,
        typer.Option(
            help="Before the color rolled back from is scaled down (default: its connection "
            "drain time + shutdown.endpointPropagationSeconds)."
        ),
    ] = None,
    keep_old_replicas: Annotated[
        int, typer.Option(help="Replicas the color rolled back from keeps.")
    ] = 0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    helm: HelmBinary = "helm",
    as_json: Json = False,
) -> None:
    """Send traffic back to the other color (never a blind `helm rollback`).

    At once while that color is warm; otherwise it is scaled up to the live color's size first,
    and traffic switches once it is fully available.
    """
    console = Console(stderr=True)
    driver = _driver(_access(namespace, kubeconfig, context, helm), console)
    timeout = _duration(ready_timeout, "--ready-timeout") or 0.0
    delay = _duration(scale_down_delay, "--scale-down-delay")

    def run() -> RolloutRecord:
        return driver.rollback(
            release,
            chart=chart,
            ready_timeout_s=timeout,
            scale_down_delay_s=delay,
            keep_old_replicas=keep_old_replicas,
        )

    _finish(driver, console, run, as_json=as_json)


def status(
    release: Release,
    namespace: Namespace,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    helm: HelmBinary = "helm",
    as_json: Json = False,
) -> None:
    """The live color, both colors (image, repository, version, models, replicas), the last rollout."""
    console = Console(stderr=True)
    driver = _driver(_access(namespace, kubeconfig, context, helm), console)
    try:
        report = driver.status(release)
    finally:
        driver.close()
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out = Console()
    consistent = (
        ""
        if report["consistent"]
        else (f"  [bold red](values say activeColor={report['active_color_value']})[/]")
    )
    out.print(
        f"release [bold]{release}[/] in {namespace}: live color "
        f"[bold]{report['live_color']}[/]{consistent}",
        highlight=False,
    )
    table = Table(show_header=True)
    for column in ("color", "role", "image", "model repository", "version", "ready", "models"):
        table.add_column(column)
    for color, info in report["colors"].items():
        replicas = info["replicas"]
        models = ", ".join(f"{m} v{'/'.join(v)}" for m, v in info["models"].items())
        table.add_row(
            color,
            info["role"] if info["enabled"] else "disabled",
            info["image"] or "-",
            (info["model_repository"] or "-")
            + (f"\n{info['manifest_digest']}" if info.get("manifest_digest") else ""),
            info["version"] or "-",
            f"{replicas['ready']}/{replicas['desired']}",
            models or "-",
        )
    out.print(table)
    last = report["last_rollout"]
    if last:
        state = "interrupted (run it again to resume)" if last["interrupted"] else last["result"]
        out.print(
            f"last {last['kind']} {last['id']}: {last['from']} → {last['to']}"
            + (f" ({last['target']})" if last["target"] else "")
            + f": [bold]{state}[/] at step {last['phase']}",
            highlight=False,
        )
        if last.get("manifest_digest"):
            out.print(f"  repository manifest {last['manifest_digest']}", highlight=False)
        if last["message"]:
            out.print(f"  {last['message']}", highlight=False)
        for check in last["checks"]:
            out.print(f"  {check['name']}: {check['status']}: {check['summary']}", highlight=False)
    traffic = report.get("traffic")
    if traffic:
        _print_traffic(out, traffic)
    if report["lock"]:
        lock = report["lock"]
        out.print(
            f"lock held by {lock['holder']} ({lock['purpose']}), {lock['expires_in_s']:.0f} s left",
            highlight=False,
        )


def _print_traffic(out: Console, traffic: dict[str, Any]) -> None:
    """The GRPCRoute's live weights, mirror and acceptance; the canary's steps so far."""
    if "error" in traffic:
        out.print(
            f"GRPCRoute {traffic['route']}: [red]{escape(traffic['error'])}[/]", highlight=False
        )
        return
    weights = ", ".join(f"{color} {weight} %" for color, weight in traffic["weights"].items())
    mirror = traffic["mirror"]
    mirrored = (
        f"; mirror to {mirror['to']}"
        + (f" ({mirror['percent']} %)" if mirror["percent"] is not None else "")
        if mirror
        else ""
    )
    state = "accepted" if traffic["accepted"] else f"[yellow]{escape(traffic['status'])}[/]"
    out.print(f"GRPCRoute {traffic['route']}: {weights}{mirrored} ({state})", highlight=False)
    phase = traffic.get("phase")
    if phase and phase["history"]:
        done = ", ".join(f"{s['weight']} % {s['status']}" for s in phase["history"])
        out.print(f"  {phase['strategy']} steps {phase['steps']}: {done}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the five commands to ``app`` (the ``tdeploy`` CLI)."""
    for command in (rollout, promote, abort, rollback, status):
        app.command()(command)


def _pydantic_message(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in errors(include_url=False)
        ]
        return "invalid arguments: " + "; ".join(parts)
    return str(exc)


def _spec_tolerances(spec: Path | None) -> dict[str, Any]:
    """The tolerances of --spec's models and ensembles (they override the golden cases')."""
    if spec is None or not spec.is_file():
        return {}  # a missing file is RolloutRequest.check's error
    from triton_deploy.build.spec import load_spec
    from triton_deploy.errors import SpecError
    from triton_deploy.repository import Tolerance

    try:
        loaded = load_spec(spec)
    except SpecError as exc:
        raise _rollout_package().RolloutUsageError(f"--spec: {exc}") from None
    tolerances = {
        m.name: Tolerance(atol=m.tolerance.atol, rtol=m.tolerance.rtol) for m in loaded.models
    }
    for e in loaded.ensembles:
        tolerances[e.name] = Tolerance(atol=e.tolerance.atol, rtol=e.tolerance.rtol)
    return tolerances
