"""The manifest: typed, versioned, relative, written last and atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from triton_deploy.repository import (
    MANIFEST,
    SCHEMA_VERSION,
    Manifest,
    ManifestError,
    check_repository,
    file_digest,
    manifest_digest,
    read_manifest,
    write_manifest,
)


def test_the_build_writes_a_typed_manifest(built_repository: Path) -> None:
    manifest = read_manifest(built_repository)
    assert manifest is not None and manifest.schema_version == SCHEMA_VERSION
    assert manifest.spec == "models.yaml"  # the name, never the builder's absolute path
    pair, price = manifest.models["pair"], manifest.models["price"]
    assert pair.converter == "onnx (copy)" and pair.format == "onnx" and pair.source == "pair.onnx"
    assert pair.parity is not None and pair.parity.passed
    assert pair.tolerance.atol == pytest.approx(1e-5)
    assert {"onnx", "onnxruntime", "numpy"} <= set(pair.frameworks)
    assert price.format.startswith("xgboost") and price.converter == "trees→fil"
    onnx = pair.files["pair/1/model.onnx"]
    assert onnx == file_digest(built_repository / "pair/1/model.onnx")
    assert onnx.size == (built_repository / "pair/1/model.onnx").stat().st_size
    assert {"pair/config.pbtxt", "pair/golden.npz"} <= set(pair.files)


def test_nothing_absolute_and_no_symlink_is_recorded(built_repository: Path) -> None:
    text = (built_repository / MANIFEST).read_text()
    assert str(built_repository.parent) not in text
    for path in read_manifest(built_repository).all_files():  # type: ignore[union-attr]
        assert not path.startswith("/") and ".." not in path.split("/")
        assert not (built_repository / path).is_symlink()
    with pytest.raises(ValueError, match="relative to the repository"):
        Manifest.model_validate({"files": {"/etc/passwd": {"sha256": "0" * 64}}})


def test_manifest_is_the_last_file_written(built_repository: Path) -> None:
    newest = max(
        (p for p in built_repository.rglob("*") if p.is_file() and p.name != MANIFEST),
        key=lambda p: p.stat().st_mtime_ns,
    )
    assert (built_repository / MANIFEST).stat().st_mtime_ns >= newest.stat().st_mtime_ns


def test_write_is_atomic_and_leaves_no_temporary_file(repository: Path) -> None:
    manifest = read_manifest(repository)
    assert manifest is not None
    before = os.stat(repository / MANIFEST).st_ino
    write_manifest(repository, manifest.model_copy(update={"seed": 7}))
    assert os.stat(repository / MANIFEST).st_ino != before  # replaced by rename, not rewritten
    assert read_manifest(repository).seed == 7  # type: ignore[union-attr]
    assert sorted(p.name for p in repository.iterdir() if p.is_file()) == [MANIFEST]


def test_schema_2_manifests_are_still_read(repository: Path) -> None:
    new = json.loads((repository / MANIFEST).read_text())
    old = {k: v for k, v in new.items() if k != "schema_version"} | {"format": 2}
    old["spec"] = "/home/someone/project/models.yaml"
    for entry in old["models"].values():
        entry["steps"] = entry.pop("converter")
        entry["files"] = {k: v["sha256"] for k, v in entry["files"].items()}
        entry.pop("frameworks")
    (repository / MANIFEST).write_text(json.dumps(old))
    manifest = read_manifest(repository)
    assert manifest is not None and manifest.schema_version == 2
    assert manifest.spec == "models.yaml"
    assert manifest.models["pair"].converter == "onnx (copy)"
    assert manifest.models["pair"].files["pair/1/model.onnx"].size is None
    assert check_repository(repository).problems == []


def test_an_invalid_manifest_is_named(repository: Path) -> None:
    (repository / MANIFEST).write_text('{"schema_version": 3, "models": {"m": {"status": 1}}}')
    with pytest.raises(ManifestError, match=r"manifest.json: not a valid build manifest: models"):
        read_manifest(repository)
    (repository / MANIFEST).write_text('{"schema_version": 99}')
    with pytest.raises(ManifestError, match="newer than this tdeploy reads"):
        read_manifest(repository)


def test_manifest_digest_names_the_exact_repository(repository: Path) -> None:
    digest = manifest_digest(repository)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    (repository / MANIFEST).unlink()
    with pytest.raises(ManifestError, match="cannot be pinned"):
        manifest_digest(repository)
