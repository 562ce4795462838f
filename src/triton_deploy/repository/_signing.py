"""Signatures over a repository with OpenSSF model signing (sigstore/model-transparency).

The signature is a Sigstore bundle (``<repository>/model.sig``) over the sha256 of every file,
``manifest.json`` included, made by ``model_signing``: with an elliptic-curve private key (PEM),
with a key and its certificate chain, or keyless through Sigstore (Fulcio + Rekor) with an OIDC
identity token. Verification is the library's, with the public key, the chain's root
certificate(s), or the expected identity and issuer for keyless bundles; it is always paired
with ``verify_repository`` (the digests against the manifest), which also refuses files the
signature does not cover.

    sign_repository(repo, private_key=Path("signing.key"))
    verify_signature(repo, public_key=Path("signing.pub"))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from triton_deploy.errors import TritonDeployError

from ._layout import IGNORED_DIRECTORIES, SIGNATURE
from ._manifest import repository_files


class SignatureError(TritonDeployError):
    """A repository's signature is missing, does not verify, or cannot be made."""


def signature_path(repository: Path) -> Path:
    return Path(repository) / SIGNATURE


def _library() -> tuple[object, object, object]:
    try:
        import model_signing.hashing
        import model_signing.signing
        import model_signing.verifying
    except ImportError as exc:
        raise SignatureError(
            f"signing needs the model-signing package ({exc.name} is missing): "
            "pip install 'triton-deploy[serve]'"
        ) from None
    return model_signing.hashing, model_signing.signing, model_signing.verifying


def _ignored(repository: Path) -> list[Path]:
    """What the signature leaves out: itself and Python byte-code caches."""
    ignored = [Path(SIGNATURE)]
    for root, dirs, _ in os.walk(repository):
        for name in dirs:
            if name in IGNORED_DIRECTORIES:
                ignored.append((Path(root) / name).relative_to(repository))
    return ignored


def sign_repository(
    repository: Path,
    *,
    private_key: Path | None = None,
    password: str | None = None,
    certificate: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    identity_token: str | None = None,
    use_staging: bool = False,
) -> Path:
    """Sign ``repository`` (see the module docstring); returns the signature's path.

    ``private_key`` alone: an elliptic-curve key pair. ``private_key`` + ``certificate`` (+
    ``certificate_chain``, intermediates then root): a certificate. ``identity_token``:
    Sigstore keyless (needs the network: Fulcio and Rekor). The repository must verify against
    its manifest first: only what the build produced is signed.
    """
    from ._integrity import verify_repository

    repository = Path(repository)
    report = verify_repository(repository)
    if report.manifest is None:
        raise SignatureError(
            f"{repository}: no manifest.json; sign a repository built by `tdeploy build`"
        )
    for relative, path in repository_files(repository).items():
        if path.is_symlink():
            raise SignatureError(f"{relative}: a symlink; only plain files are signed")
    hashing, signing, _ = _library()
    config = signing.Config()  # type: ignore[attr-defined]
    if identity_token is not None:
        config.use_sigstore_signer(identity_token=identity_token, use_staging=use_staging)
    elif private_key is not None and certificate is not None:
        config.use_certificate_signer(
            private_key=private_key,
            signing_certificate=certificate,
            certificate_chain=list(certificate_chain),
        )
    elif private_key is not None:
        config.use_elliptic_key_signer(private_key=private_key, password=password)
    else:
        raise SignatureError(
            "give a private key (--key), a key and --certificate, or --identity-token for "
            "Sigstore keyless signing"
        )
    config.set_hashing_config(
        hashing.Config().set_ignored_paths(  # type: ignore[attr-defined]
            paths=_ignored(repository), ignore_git_paths=False
        )
    )
    target = signature_path(repository)
    partial = target.with_name(f".{SIGNATURE}.partial")
    try:
        config.sign(repository, partial)
    except TritonDeployError:
        raise
    except Exception as exc:  # the library raises ValueError, OSError, crypto errors
        partial.unlink(missing_ok=True)
        raise SignatureError(f"signing {repository} failed: {type(exc).__name__}: {exc}") from None
    os.replace(partial, target)
    return target


def verify_signature(
    repository: Path,
    *,
    public_key: Path | None = None,
    certificate_chain: Sequence[Path] = (),
    identity: str | None = None,
    oidc_issuer: str | None = None,
    use_staging: bool = False,
) -> None:
    """The signature of ``repository`` against a public key, a certificate chain, or (keyless)
    the signer's identity and OIDC issuer. Raises ``SignatureError`` naming what failed."""
    repository = Path(repository)
    signature = signature_path(repository)
    if not signature.is_file():
        raise SignatureError(
            f"{repository}: not signed (no {SIGNATURE}); sign it with `tdeploy sign`"
        )
    _, _, verifying = _library()
    config = verifying.Config()  # type: ignore[attr-defined]
    if public_key is not None:
        config.use_elliptic_key_verifier(public_key=public_key)
    elif certificate_chain:
        config.use_certificate_verifier(certificate_chain=list(certificate_chain))
    elif identity is not None and oidc_issuer is not None:
        config.use_sigstore_verifier(
            identity=identity, oidc_issuer=oidc_issuer, use_staging=use_staging
        )
    else:
        raise SignatureError(
            "give a public key, a certificate chain, or the signer's identity and OIDC issuer"
        )
    # Files the signature does not cover are refused by the digest check (verify_repository),
    # except the node-built TensorRT plans and byte-code caches it allows.
    config.set_ignore_unsigned_files(True)
    try:
        config.verify(repository, signature)
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise SignatureError(
            f"{repository}: the signature does not verify: {message[:2000]}"
        ) from None
