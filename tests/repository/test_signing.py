"""Signatures with OpenSSF model signing: key pairs and a certificate chain generated here."""

from __future__ import annotations

from pathlib import Path

import pytest
from keys import certificate_chain, key_pair
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.repository import (
    SIGNATURE,
    IntegrityError,
    SignatureError,
    TrustPolicy,
    sign_repository,
    verify_for_serving,
    verify_signature,
)


def test_a_key_pair_round_trips(repository: Path, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "release")
    path = sign_repository(repository, private_key=private)
    assert path == repository / SIGNATURE and path.stat().st_size > 0
    verify_signature(repository, public_key=public)
    report = verify_for_serving(repository, TrustPolicy(public_key=public))
    assert report.signature == "verified (public key)"


def test_another_key_is_refused(repository: Path, tmp_path: Path) -> None:
    private, _ = key_pair(tmp_path, "release")
    _, other = key_pair(tmp_path, "attacker")
    sign_repository(repository, private_key=private)
    with pytest.raises(SignatureError, match="the signature does not verify"):
        verify_signature(repository, public_key=other)


def test_a_file_changed_after_signing_is_refused(repository: Path, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "release")
    sign_repository(repository, private_key=private)
    path = repository / "pair/config.pbtxt"
    path.write_text(path.read_text() + "\n# edited\n")
    with pytest.raises(SignatureError, match=r"pair/config\.pbtxt"):
        verify_signature(repository, public_key=public)
    # the policy names the file with both digests first
    with pytest.raises(IntegrityError, match=r"pair/config\.pbtxt: changed since the build"):
        verify_for_serving(repository, TrustPolicy(public_key=public, allow_unverified=True))


def test_a_manifest_rewritten_to_match_tampered_files_is_refused(
    repository: Path, tmp_path: Path
) -> None:
    """Someone who can write the bucket edits a file and recomputes manifest.json: the digests
    agree again, the signature does not."""
    from triton_deploy.repository import digests, read_manifest, write_manifest

    private, public = key_pair(tmp_path, "release")
    sign_repository(repository, private_key=private)
    path = repository / "price/1/xgboost.json"
    path.write_text(path.read_text().replace('"base_score":', '"base_score": ', 1))
    manifest = read_manifest(repository)
    assert manifest is not None
    entry = manifest.models["price"].model_copy(update={"files": digests(repository, "price")})
    write_manifest(
        repository, manifest.model_copy(update={"models": {**manifest.models, "price": entry}})
    )
    assert verify_for_serving(repository).integrity.ok  # digests alone are fooled
    with pytest.raises(SignatureError, match="does not verify"):
        verify_for_serving(repository, TrustPolicy(public_key=public))


def test_an_unsigned_repository_is_refused_when_a_signature_is_required(
    repository: Path, tmp_path: Path
) -> None:
    _, public = key_pair(tmp_path, "release")
    with pytest.raises(SignatureError, match="not signed"):
        verify_for_serving(repository, TrustPolicy(require_signature=True, public_key=public))


def test_a_certificate_chain_round_trips(repository: Path, tmp_path: Path) -> None:
    private, leaf, root = certificate_chain(tmp_path, "ci")
    sign_repository(repository, private_key=private, certificate=leaf, certificate_chain=[root])
    verify_signature(repository, certificate_chain=[root])
    (tmp_path / "other").mkdir()
    _, _, other_root = certificate_chain(tmp_path / "other", "other")
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(repository, certificate_chain=[other_root])


def test_only_a_verified_repository_is_signed(repository: Path, tmp_path: Path) -> None:
    private, _ = key_pair(tmp_path, "release")
    (repository / "pair/1/extra.bin").write_bytes(b"x")
    with pytest.raises(IntegrityError, match=r"pair/1/extra\.bin"):
        sign_repository(repository, private_key=private)
    assert not (repository / SIGNATURE).exists()


def test_cli_sign_and_verify_signature(repository: Path, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "release")
    _, other = key_pair(tmp_path, "other")
    runner = CliRunner()
    signed = runner.invoke(app, ["sign", str(repository), "--key", str(private)])
    assert signed.exit_code == 0, signed.output
    assert "signed" in signed.output
    ok = runner.invoke(app, ["verify-signature", str(repository), "--public-key", str(public)])
    assert ok.exit_code == 0, ok.output
    assert "verified (public key)" in ok.output
    bad = runner.invoke(app, ["verify-signature", str(repository), "--public-key", str(other)])
    assert bad.exit_code == 1 and "error:" in bad.output and "Traceback" not in bad.output
    none = runner.invoke(app, ["verify-signature", str(repository)])
    assert none.exit_code == 1 and "a required signature needs --public-key" in none.output


def test_build_signs_as_it_finishes(built_repository: Path, tmp_path: Path) -> None:
    private, public = key_pair(tmp_path, "release")
    out = tmp_path / "signed_repository"
    spec = built_repository.parent / "models.yaml"
    args = ["build", "--spec", str(spec), "--out", str(out), "--sign-key", str(private)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    verify_signature(out, public_key=public)
    assert "signed" in result.output
