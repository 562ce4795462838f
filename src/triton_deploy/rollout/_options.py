"""What a rollout is asked to do, validated before anything is read from or sent to a cluster.

    request = RolloutRequest(release="triton", chart="./charts/triton-deploy",
                             target=Target(model_repository="s3://models/triton/v2"))
    parse_duration("5m")      # 300.0

Every problem is a ``RolloutUsageError`` that names the option and what it accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from triton_deploy.repository import Tolerance, TrustPolicy

from ._errors import RolloutUsageError
from ._record import Settings, Target

__all__ = [
    "ClusterAccess",
    "RolloutRequest",
    "parse_duration",
    "repository_values",
    "validate_target",
]

_URI = re.compile(r"^(s3|gs|as)://[A-Za-z0-9][^\s/]*(/\S*)?$")
_PVC = re.compile(r"^pvc://([a-z0-9]([-a-z0-9.]*[a-z0-9])?)(/\S*)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str, option: str = "duration") -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``1h30m``, ``1m30s``, ``2.5s``."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    match = _DURATION.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise RolloutUsageError(
            f"{option}: expected a duration such as 30s, 5m or 1h30m, got {text!r}"
        )
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def validate_target(target: Target) -> None:
    uri = target.model_repository
    if not (_URI.match(uri) or _PVC.match(uri)):
        raise RolloutUsageError(
            f"--model-repository {uri!r} is not a model repository the chart can mount: "
            "s3://bucket/path, gs://bucket/path, as://account/container/path or "
            "pvc://claim-name[/sub/path]"
        )
    if target.image_tag is not None and not _TAG.match(target.image_tag):
        raise RolloutUsageError(
            f"--image-tag {target.image_tag!r} is not a valid image tag "
            "(letters, digits, '_', '.', '-'; at most 128 characters)"
        )
    if target.version is not None and (
        len(target.version) > 63 or not _LABEL_VALUE.match(target.version)
    ):
        raise RolloutUsageError(
            f"--version {target.version!r} must be a Kubernetes label value (at most 63 "
            "letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        )


def repository_values(
    uri: str, current: dict[str, object], manifest_digest: str | None = None
) -> dict[str, object]:
    """The chart's ``<color>.modelRepository`` for ``uri``, keeping ``current``'s credentials
    and options (a ``sync`` source stays ``sync``), pinned to ``manifest_digest`` where the
    pods check a local copy (sources ``sync`` and ``pvc``; a previous pin never carries over)."""
    block: dict[str, object] = dict(current)
    pvc = _PVC.match(uri)
    if pvc:
        claim_block = dict(current.get("pvc") or {})  # type: ignore[call-overload]
        claim_block["claimName"] = pvc.group(1)
        claim_block["subPath"] = (pvc.group(3) or "").lstrip("/")
        block["source"] = "pvc"
        block["pvc"] = claim_block
    else:
        block["source"] = "sync" if current.get("source") == "sync" else "objectStorage"
        block["uri"] = uri
    pin = manifest_digest if block["source"] in ("sync", "pvc") else None
    if pin:
        block["manifestDigest"] = pin if pin.startswith("sha256:") else f"sha256:{pin}"
    elif "manifestDigest" in block:
        block["manifestDigest"] = ""
    return block


class ClusterAccess(BaseModel):
    """How to reach the cluster: namespace, kubeconfig, context, the helm executable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    kubeconfig: str | None = None
    context: str | None = None
    helm: str = "helm"


class RolloutRequest(BaseModel):
    """The arguments of ``tdeploy rollout``."""

    model_config = ConfigDict(extra="forbid")

    release: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=53)
    chart: str = Field(min_length=1)
    target: Target
    mode: Literal["auto", "manual"] = "auto"
    settings: Settings = Field(default_factory=Settings)
    slo: Path | None = None
    slo_users: int = Field(8, ge=1)
    slo_run_time: str = "30s"
    golden: Path | None = None
    spec: Path | None = None
    # Tolerances that override the golden cases' own (the CLI reads them from --spec).
    tolerances: dict[str, Tolerance] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)
    reports: Path = Path("reports/rollout")
    # The repository, read from its URI as the pods will, must verify before anything changes
    # (triton_deploy.repository.verify_uri); its manifest digest is pinned in the chart.
    repository_check: bool = True
    require_signature: bool = False
    public_key: Path | None = None
    certificate_chain: list[Path] = Field(default_factory=list)
    signer_identity: str | None = None
    signer_oidc_issuer: str | None = None
    manifest_digest: str | None = Field(None, pattern=r"^(sha256:)?[0-9a-f]{64}$")

    def trust_policy(self) -> TrustPolicy:
        """What the repository must satisfy (the same policy as `tdeploy serve`)."""
        for option, path in [
            ("--public-key", self.public_key),
            *(("--certificate-chain", p) for p in self.certificate_chain),
        ]:
            if path is not None and not path.is_file():
                raise RolloutUsageError(f"{option}: no such file {str(path)!r}")
        if bool(self.signer_identity) != bool(self.signer_oidc_issuer):
            raise RolloutUsageError("--signer-identity and --signer-oidc-issuer go together")
        policy = TrustPolicy(
            require_signature=self.require_signature,
            expected_digest=self.manifest_digest,
            public_key=self.public_key,
            certificate_chain=tuple(self.certificate_chain),
            identity=self.signer_identity,
            oidc_issuer=self.signer_oidc_issuer,
        )
        if self.require_signature and not policy.checks_signature:
            raise RolloutUsageError(
                "--require-signature needs --public-key, --certificate-chain or "
                "--signer-identity/--signer-oidc-issuer"
            )
        return policy

    def check(self) -> None:
        """Everything that can be checked without a cluster (files, URIs, tags)."""
        validate_target(self.target)
        self._check_strategy()
        chart = Path(self.chart)
        if (
            (self.chart.startswith((".", "/")) or chart.exists())
            and not (chart / "Chart.yaml").is_file()
            and not chart.is_file()
        ):
            raise RolloutUsageError(f"--chart {self.chart!r}: no Helm chart there (no Chart.yaml)")
        if self.slo is not None:
            from triton_deploy.loadtests import LoadTestConfigError, load_slo
            from triton_deploy.loadtests.config import mix_path

            try:
                spec = load_slo(self.slo)
            except LoadTestConfigError as exc:
                raise RolloutUsageError(f"--slo: {exc}") from None
            if not mix_path(spec.environment or "local").is_file():
                raise RolloutUsageError(
                    f"--slo {self.slo}: no task mix for its environment {spec.environment!r}"
                )
            parse_duration(self.slo_run_time, "--slo-run-time")
        if self.golden is not None:
            from triton_deploy.repository import GOLDEN_FILE, load_golden_cases

            if not load_golden_cases(self.golden):
                raise RolloutUsageError(
                    f"--golden {self.golden}: no golden cases (*/{GOLDEN_FILE}) there: give the "
                    "local `tdeploy build` output of the version being rolled out"
                )
        if self.spec is not None and not self.spec.is_file():
            raise RolloutUsageError(f"--spec {self.spec}: no such file")

    def _check_strategy(self) -> None:
        settings = self.settings
        strategy = settings.strategy
        if strategy == "canary" and not settings.canary_steps:
            raise RolloutUsageError("--strategy canary needs --steps, e.g. --steps 5,25,50,100")
        if strategy != "canary" and settings.canary_steps:
            raise RolloutUsageError(f"--steps is for --strategy canary, not {strategy}")
        if strategy != "shadow" and settings.shadow_metrics:
            raise RolloutUsageError(f"--shadow-metrics is for --strategy shadow, not {strategy}")
        if strategy != "shadow" and settings.shadow_percent is not None:
            raise RolloutUsageError(f"--shadow-percent is for --strategy shadow, not {strategy}")
