"""``tdeploy sign``, ``tdeploy verify-signature`` and ``tdeploy verify-repository``: the supply
chain of a model repository at the command line (``triton_deploy.repository`` does the work).

``verify-repository`` is what the chart's init container runs in every pod before Triton
starts; ``tdeploy serve`` applies the same policy (``verify_for_serving``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from triton_deploy.cli_options import DEFAULT_REPOSITORY

if TYPE_CHECKING:
    from triton_deploy.repository import TrustPolicy

__all__ = [
    "CertificateChain",
    "Identity",
    "OidcIssuer",
    "PublicKey",
    "sign",
    "trust_policy",
    "verify_repository",
    "verify_signature",
]

console = Console(stderr=True)

RepositoryArgument = Annotated[
    Path, typer.Argument(help="The model repository (a folder built by `tdeploy build`).")
]
PublicKey = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="PEM public key the repository's signature must verify with.",
        envvar="TDEPLOY_SIGNING_PUBLIC_KEY",
    ),
]
CertificateChain = Annotated[
    list[Path] | None,
    typer.Option(
        "--certificate-chain",
        help="PEM certificate(s) the signing certificate must chain to (repeatable).",
    ),
]
Identity = Annotated[
    str | None,
    typer.Option(
        "--signer-identity",
        help="Sigstore keyless: the identity (e.g. a CI workflow URI or e-mail) that signed.",
    ),
]
OidcIssuer = Annotated[
    str | None,
    typer.Option(
        "--signer-oidc-issuer",
        help="Sigstore keyless: the OIDC issuer of the signer's identity.",
    ),
]


def _say(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def trust_policy(
    *,
    allow_unverified: bool = False,
    require_signature: bool = False,
    manifest_digest: str | None = None,
    public_key: Path | None = None,
    certificate_chain: list[Path] | None = None,
    identity: str | None = None,
    oidc_issuer: str | None = None,
) -> TrustPolicy:
    """The ``TrustPolicy`` of the command-line options (checks the files named exist)."""
    from triton_deploy.clients import UsageError
    from triton_deploy.repository import TrustPolicy

    files = [("--public-key", public_key)]
    files += [("--certificate-chain", p) for p in certificate_chain or []]
    for option, path in files:
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{option}: no such file {str(path)!r}")
    if bool(identity) != bool(oidc_issuer):
        raise UsageError("--signer-identity and --signer-oidc-issuer go together")
    if require_signature and not (public_key or certificate_chain or identity):
        raise UsageError(
            "a required signature needs --public-key, --certificate-chain or "
            "--signer-identity/--signer-oidc-issuer to verify it with"
        )
    return TrustPolicy(
        allow_unverified=allow_unverified,
        require_signature=require_signature,
        expected_digest=manifest_digest or None,
        public_key=public_key,
        certificate_chain=tuple(certificate_chain or ()),
        identity=identity,
        oidc_issuer=oidc_issuer,
    )


def sign(
    repository: RepositoryArgument = DEFAULT_REPOSITORY,
    key: Annotated[
        Path | None,
        typer.Option(help="PEM elliptic-curve private key (key-pair or certificate signing)."),
    ] = None,
    key_password_env: Annotated[
        str | None,
        typer.Option(help="Name of the environment variable holding the key's password."),
    ] = None,
    certificate: Annotated[
        Path | None, typer.Option(help="PEM signing certificate for --key (certificate signing).")
    ] = None,
    certificate_chain: CertificateChain = None,
    identity_token: Annotated[
        str | None,
        typer.Option(
            help="Sigstore keyless signing with this OIDC token (e.g. a CI job's); needs "
            "network access to Fulcio and Rekor.",
            envvar="TDEPLOY_SIGSTORE_IDENTITY_TOKEN",
        ),
    ] = None,
    staging: Annotated[
        bool, typer.Option(help="Sigstore keyless: use Sigstore's staging instance.")
    ] = False,
) -> None:
    """Sign a built repository (a Sigstore bundle over every file's digest, model.sig) with
    OpenSSF model signing: a key pair, a certificate, or Sigstore keyless."""
    from triton_deploy.clients import UsageError
    from triton_deploy.repository import manifest_digest, sign_repository

    for option, path in (("--key", key), ("--certificate", certificate)):
        if path is not None and not path.is_file():
            raise UsageError(f"{option}: no such file {str(path)!r}")
    if certificate is not None and key is None:
        raise UsageError("--certificate needs --key (the certificate's private key)")
    password = None
    if key_password_env:
        password = os.environ.get(key_password_env)
        if password is None:
            raise UsageError(f"--key-password-env: ${key_password_env} is not set")
    path = sign_repository(
        repository,
        private_key=key,
        password=password,
        certificate=certificate,
        certificate_chain=certificate_chain or [],
        identity_token=identity_token,
        use_staging=staging,
    )
    console.print(
        f"[bold green]signed[/] {repository} → {path} (manifest {manifest_digest(repository)})",
        highlight=False,
    )


def verify_signature(
    repository: RepositoryArgument = DEFAULT_REPOSITORY,
    public_key: PublicKey = None,
    certificate_chain: CertificateChain = None,
    signer_identity: Identity = None,
    signer_oidc_issuer: OidcIssuer = None,
) -> None:
    """Verify a repository's signature and every file against its manifest."""
    verify_repository(
        repository,
        manifest_digest=None,
        require_signature=True,
        public_key=public_key,
        certificate_chain=certificate_chain,
        signer_identity=signer_identity,
        signer_oidc_issuer=signer_oidc_issuer,
    )


def verify_repository(
    repository: RepositoryArgument = DEFAULT_REPOSITORY,
    manifest_digest: Annotated[
        str | None,
        typer.Option(
            help="Require exactly this manifest (sha256:<hex>, as `tdeploy status` and the "
            "chart's <color>.modelRepository.manifestDigest show it).",
            envvar="TDEPLOY_MANIFEST_DIGEST",
        ),
    ] = None,
    require_signature: Annotated[
        bool, typer.Option(help="Refuse a repository without a valid signature.")
    ] = False,
    public_key: PublicKey = None,
    certificate_chain: CertificateChain = None,
    signer_identity: Identity = None,
    signer_oidc_issuer: OidcIssuer = None,
) -> None:
    """Check every file of a repository against its manifest (and the pin, and the signature
    when a key is given): what the chart's init container runs before Triton starts."""
    from triton_deploy.repository import verify_for_serving

    policy = trust_policy(
        require_signature=require_signature,
        manifest_digest=manifest_digest,
        public_key=public_key,
        certificate_chain=certificate_chain,
        identity=signer_identity,
        oidc_issuer=signer_oidc_issuer,
    )
    report = verify_for_serving(repository, policy, warn=_say)
    console.print(f"[bold green]verified[/] {escape(report.summary())}", highlight=False)
