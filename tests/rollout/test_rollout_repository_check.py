"""`tdeploy rollout` reads the target repository from its s3:// URI as the pods will (a real S3
endpoint: moto's server, through boto3), refuses one whose files or signature do not verify
before anything changes, and records the manifest digest (rollout record, `tdeploy status`).
The chart's pin of that digest is checked on the values the driver computes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from harness import RELEASE, RolloutCluster
from moto.server import ThreadedMotoServer
from test_rollout_cluster import rollout_args, run_json

from triton_deploy.repository import (
    Manifest,
    ModelEntry,
    digests,
    manifest_digest,
    sign_repository,
    write_manifest,
)
from triton_deploy.rollout._options import repository_values
from triton_deploy.runtime.server import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "repository"))
from keys import key_pair

BUCKET = "models"


@pytest.fixture
def s3(cluster: RolloutCluster) -> Iterator[object]:
    """moto's S3 server on a free port; the driver's environment points boto3 at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    cluster.env.pop("TDEPLOY_SKIP_REPOSITORY_CHECK", None)
    cluster.env.update(credentials)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        server.stop()


def _built(repository: Path) -> Path:
    """What `tdeploy build` leaves: a manifest over every file (the tiny test repository is
    written by the harness, not built)."""
    manifest = Manifest(models={"tiny": ModelEntry(files=digests(repository, "tiny"))})
    write_manifest(repository, manifest)
    return repository


def _upload(client: object, repository: Path, prefix: str) -> None:
    for path in sorted(repository.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(repository).as_posix()}"
            client.upload_file(str(path), BUCKET, key)  # type: ignore[attr-defined]


def test_a_tampered_or_foreign_signed_repository_is_refused_before_anything_changes(
    cluster: RolloutCluster, s3: object, tmp_path: Path
) -> None:
    repository = _built(cluster.repositories["s3://models/v2"])
    private, public = key_pair(tmp_path, "release")
    _, other = key_pair(tmp_path, "other")
    sign_repository(repository, private_key=private)
    before, revisions = cluster.objects(), len(cluster.history())

    _upload(s3, repository, "v2")
    onnx = repository / "tiny" / "2" / "model.onnx"
    s3.put_object(Bucket=BUCKET, Key="v2/tiny/2/model.onnx", Body=onnx.read_bytes() + b"\0")  # type: ignore[attr-defined]
    result = cluster.tdeploy(*rollout_args(cluster))
    assert result.returncode == 1, result.stderr[-3000:]
    message = " ".join(result.stderr.split())
    assert "s3://models/v2 does not verify; nothing was changed" in message
    assert "tiny/2/model.onnx: changed since the build (manifest sha256" in message
    assert "Traceback" not in result.stderr

    _upload(s3, repository, "v2")  # intact again, but signed by a key we do not trust
    result = cluster.tdeploy(*rollout_args(cluster, "--public-key", str(other)))
    assert result.returncode == 1 and "the signature does not verify" in result.stderr

    result = cluster.tdeploy(*rollout_args(cluster, "--manifest-digest", "sha256:" + "0" * 64))
    assert result.returncode == 1 and "this is not the pinned repository" in result.stderr
    assert cluster.objects() == before and len(cluster.history()) == revisions
    assert cluster.record() is None

    result = cluster.tdeploy(
        *rollout_args(cluster, "--require-signature", "--public-key", str(public)), "--json"
    )
    assert result.returncode == 0, result.stderr[-4000:]
    digest = manifest_digest(repository)
    assert run_json(result)["manifest_digest"] == digest
    assert (
        "repository check" in result.stderr and "signature verified (public key)" in result.stderr
    )
    status = run_json(cluster.tdeploy("status", "--release", RELEASE, "--json"))
    assert status["last_rollout"]["manifest_digest"] == digest


def test_the_digest_is_pinned_where_pods_check_a_local_copy() -> None:
    digest = "sha256:" + "a" * 64
    sync = repository_values("s3://m/v2", {"source": "sync", "uri": "s3://m/v1"}, digest)
    assert sync["manifestDigest"] == digest and sync["uri"] == "s3://m/v2"
    pvc = repository_values("pvc://claim/v2", {"source": "pvc"}, "a" * 64)
    assert pvc["manifestDigest"] == digest
    # Triton reads object storage itself: no copy to check, no pin (the chart refuses one)
    direct = repository_values("s3://m/v2", {"source": "objectStorage"}, digest)
    assert "manifestDigest" not in direct
    # a previous build's pin never carries over to another repository
    stale = {"source": "sync", "uri": "s3://m/v1", "manifestDigest": digest}
    assert repository_values("s3://m/v2", stale, None)["manifestDigest"] == ""
