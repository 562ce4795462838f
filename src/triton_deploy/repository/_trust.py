"""What a server start (``tdeploy serve``, the chart's init container, a rollout) requires of a
repository before anything serves it: the one policy, so every place checks the same.

- the files match the manifest (changed, missing, extra files and symlinks refuse, each named
  with both digests); ``allow_unverified`` turns that into a warning (repositories made by hand);
- a repository without a manifest is served with a warning, unless a signature or a pin is
  required;
- ``expected_digest`` pins the manifest (``sha256:<hex>``): a different repository refuses;
- the signature is checked whenever a public key, a certificate chain or a keyless identity is
  given, and required with ``require_signature``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._integrity import IntegrityReport, check_repository
from ._signing import SignatureError, signature_path, verify_signature


@dataclass(frozen=True)
class TrustPolicy:
    """What must verify (see the module docstring)."""

    allow_unverified: bool = False
    require_signature: bool = False
    expected_digest: str | None = None
    public_key: Path | None = None
    certificate_chain: Sequence[Path] = field(default_factory=tuple)
    identity: str | None = None
    oidc_issuer: str | None = None

    @property
    def checks_signature(self) -> bool:
        return bool(
            self.require_signature
            or self.public_key
            or self.certificate_chain
            or (self.identity and self.oidc_issuer)
        )


@dataclass
class TrustReport:
    integrity: IntegrityReport
    signature: str  # "verified (public key)", "not checked", ...
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.integrity.summary()}; signature {self.signature}"


def verify_for_serving(
    repository: Path,
    policy: TrustPolicy | None = None,
    *,
    models: list[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> TrustReport:
    """Check ``repository`` against ``policy``; raises ``IntegrityError`` or ``SignatureError``
    naming what failed, returns what was checked (warnings also go to ``warn``)."""
    policy = policy or TrustPolicy()
    repository = Path(repository)
    warnings: list[str] = []
    integrity = check_repository(repository, models=models, expected_digest=policy.expected_digest)
    if integrity.manifest is None:
        if policy.checks_signature:
            raise SignatureError(
                f"{repository}: no manifest.json, so nothing the build produced can be verified "
                "(a signature was required)"
            )
        warnings.append(
            f"{repository} has no build manifest (manifest.json): its files are not verified; "
            "build it with `tdeploy build` to have them checked"
        )
    elif integrity.problems:
        if not policy.allow_unverified or policy.checks_signature:
            integrity.raise_for_problems()
        warnings.append(
            f"--allow-unverified: serving {repository} although "
            f"{len(integrity.problems)} file(s) do not match its manifest:\n"
            + "\n".join(f"  {p}" for p in integrity.problems)
        )
    if policy.checks_signature:
        verify_signature(
            repository,
            public_key=policy.public_key,
            certificate_chain=list(policy.certificate_chain),
            identity=policy.identity,
            oidc_issuer=policy.oidc_issuer,
        )
        how = (
            "public key"
            if policy.public_key
            else "certificate chain"
            if policy.certificate_chain
            else f"Sigstore identity {policy.identity}"
        )
        signature = f"verified ({how})"
    elif signature_path(repository).is_file():
        signature = "present, not checked (give --public-key or --certificate-chain)"
    else:
        signature = "none"
    for message in warnings:
        if warn is not None:
            warn(message)
    return TrustReport(integrity, signature, warnings)
