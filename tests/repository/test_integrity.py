"""Every file against the manifest: changed, missing, extra files and symlinks are named with
both digests; a copy made like `aws s3 sync` verifies; the manifest pin."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from triton_deploy.repository import (
    IntegrityError,
    check_repository,
    file_digest,
    manifest_digest,
    verify_repository,
)


def test_an_untouched_repository_verifies(repository: Path) -> None:
    report = verify_repository(repository)
    assert report.ok and report.checked == len(report.manifest.all_files())  # type: ignore[union-attr]
    assert report.digest == manifest_digest(repository)


def test_a_changed_weight_file_is_named_with_both_digests(repository: Path) -> None:
    path = repository / "price/1/xgboost.json"
    recorded = file_digest(path).sha256
    path.write_text(path.read_text().replace('"base_score":', '"base_score": ', 1))
    found = file_digest(path).sha256
    with pytest.raises(IntegrityError) as raised:
        verify_repository(repository)
    message = str(raised.value)
    assert "price/1/xgboost.json: changed since the build" in message
    assert f"manifest sha256 {recorded}" in message and f"file sha256 {found}" in message
    assert [p.path for p in raised.value.problems] == ["price/1/xgboost.json"]


def test_a_same_size_edit_is_caught(repository: Path) -> None:
    path = repository / "pair/1/model.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = check_repository(repository).problems
    assert [(p.path, p.problem) for p in problems] == [("pair/1/model.onnx", "changed")]


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        ("config", "pair/config.pbtxt", "changed"),
        ("delete", "price/1/xgboost.json", "missing"),
        ("add", "pair/1/extra.onnx", "extra"),
        ("add", "new_model/config.pbtxt", "extra"),
        ("symlink", "pair/1/link.onnx", "symlink"),
    ],
)
def test_each_kind_of_tampering_is_named(
    repository: Path, change: str, path: str, problem: str
) -> None:
    target = repository / path
    if change == "config":
        target.write_text(target.read_text().replace("max_batch_size: 64", "max_batch_size: 65"))
        assert "65" in target.read_text()
    elif change == "delete":
        target.unlink()
    elif change == "add":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"not from the build")
    else:
        target.symlink_to(repository / "pair/1/model.onnx")
    problems = check_repository(repository).problems
    assert [(p.path, p.problem) for p in problems] == [(path, problem)]
    with pytest.raises(IntegrityError, match=path.replace(".", r"\.")):
        verify_repository(repository)


def test_byte_code_caches_are_not_files_of_the_repository(repository: Path) -> None:
    cache = repository / "pair/1/__pycache__"
    cache.mkdir()
    (cache / "model.cpython-311.pyc").write_bytes(b"\0")
    assert check_repository(repository).problems == []


def test_a_copy_with_new_timestamps_and_modes_verifies(repository: Path, tmp_path: Path) -> None:
    """What `aws s3 sync` / `gsutil rsync` give: the same bytes at the same relative paths, new
    mtimes, default permissions, another absolute location."""
    copy = tmp_path / "synced" / "deep" / "models"
    for path in sorted(repository.rglob("*")):
        if path.is_file():
            target = copy / path.relative_to(repository)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            os.chmod(target, 0o600)
    assert verify_repository(copy).ok
    assert manifest_digest(copy) == manifest_digest(repository)


def test_the_manifest_pin(repository: Path, built_repository: Path) -> None:
    digest = manifest_digest(repository)
    assert verify_repository(repository, expected_digest=digest).ok
    assert verify_repository(repository, expected_digest=digest.removeprefix("sha256:")).ok
    other = "sha256:" + "0" * 64
    with pytest.raises(IntegrityError, match=f"manifest digest {digest}, but {other}"):
        verify_repository(repository, expected_digest=other)
    shutil.rmtree(repository / "price")
    (repository / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match=r"no manifest\.json"):
        verify_repository(repository, expected_digest=digest)


def test_only_the_loaded_models_when_asked(repository: Path) -> None:
    (repository / "price/1/xgboost.json").unlink()
    assert check_repository(repository, models=["pair"]).problems == []
    assert check_repository(repository, models=["price"]).problems != []


def test_a_hand_made_repository_has_no_manifest(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "config.pbtxt").write_text('backend: "python"')
    report = check_repository(tmp_path)
    assert report.manifest is None and not report.ok and "not verified" in report.summary()
