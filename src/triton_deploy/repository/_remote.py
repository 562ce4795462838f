"""A repository read from where the pods will read it: a local folder, ``s3://`` (boto3, the AWS
SDK: credentials, region and ``AWS_ENDPOINT_URL`` from the usual environment and files) or
``gs://`` (google-cloud-storage, when installed). It is copied into a temporary folder the way
``aws s3 sync`` / ``gsutil rsync`` copy it, then checked with the same policy as a server start.

    report = verify_uri("s3://models/triton/v2", TrustPolicy(public_key=Path("release.pub")))
    report.integrity.digest        # "sha256:..." of its manifest.json
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from triton_deploy.errors import TritonDeployError

from ._integrity import IntegrityError
from ._signing import SignatureError
from ._trust import TrustPolicy, TrustReport, verify_for_serving

_OBJECT_URI = re.compile(r"^(s3|gs)://([^/]+)/?(.*)$")


class RemoteRepositoryError(TritonDeployError):
    """A repository URI that cannot be read from here (names the URI and why)."""


def readable(uri: str) -> bool:
    """Whether ``fetch_repository`` can read ``uri`` from this machine (pvc:// and as:// cannot)."""
    return bool(_OBJECT_URI.match(uri)) or "://" not in uri or uri.startswith("file://")


def _relative(key: str, prefix: str) -> PurePosixPath | None:
    rest = key[len(prefix) :].lstrip("/") if prefix else key
    if not rest or rest.endswith("/"):
        return None  # the folder itself, or a "directory marker" object
    path = PurePosixPath(rest)
    if path.is_absolute() or ".." in path.parts:
        raise RemoteRepositoryError(f"object {key!r}: not a path inside the repository")
    return path


def _fetch_s3(bucket: str, prefix: str, destination: Path) -> int:
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise RemoteRepositoryError(
            "reading s3:// repositories needs boto3: pip install 'triton-deploy[k8s]'"
        ) from None
    client = boto3.client("s3")
    prefix = f"{prefix.rstrip('/')}/" if prefix else ""
    count = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = _relative(item["Key"], prefix)
                if relative is None:
                    continue
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target))
                count += 1
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise RemoteRepositoryError(f"s3://{bucket}/{prefix}: {exc}") from None
    return count


def _fetch_gcs(bucket: str, prefix: str, destination: Path) -> int:
    try:
        from google.cloud import storage
    except ImportError:
        raise RemoteRepositoryError(
            "reading gs:// repositories needs google-cloud-storage: pip install "
            "google-cloud-storage (or pass --skip-repository-check; the pods still verify it)"
        ) from None
    prefix = f"{prefix.rstrip('/')}/" if prefix else ""
    count = 0
    try:
        for blob in storage.Client().list_blobs(bucket, prefix=prefix):
            relative = _relative(blob.name, prefix)
            if relative is None:
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            count += 1
    except Exception as exc:  # google.api_core errors, auth errors
        raise RemoteRepositoryError(f"gs://{bucket}/{prefix}: {exc}") from None
    return count


def fetch_repository(uri: str, destination: Path) -> Path:
    """Copy the repository at ``uri`` into ``destination`` (or return a local folder as is)."""
    match = _OBJECT_URI.match(uri)
    if match is None:
        if not readable(uri):
            raise RemoteRepositoryError(
                f"{uri}: cannot be read from this machine (only s3://, gs:// and local folders); "
                "the chart's verify-repository init container checks it in the pod"
            )
        local = Path(uri.removeprefix("file://"))
        if not local.is_dir():
            raise RemoteRepositoryError(f"{uri}: no such folder")
        return local
    scheme, bucket, prefix = match.groups()
    fetch = _fetch_s3 if scheme == "s3" else _fetch_gcs
    if fetch(bucket, prefix, destination) == 0:
        raise RemoteRepositoryError(f"{uri}: no objects there (is the URI right?)")
    return destination


def verify_uri(
    uri: str, policy: TrustPolicy | None = None, *, warn: Callable[[str], None] | None = None
) -> TrustReport:
    """The repository at ``uri``, read as the pods will, against ``policy``."""
    with tempfile.TemporaryDirectory(prefix="tdeploy-verify-") as folder:
        local = fetch_repository(uri, Path(folder) / "repository")

        def named(message: str) -> str:  # the URI, not the temporary copy
            return message.replace(str(local), uri)

        try:
            return verify_for_serving(
                local, policy, warn=(lambda m: warn(named(m))) if warn else None
            )
        except (IntegrityError, SignatureError) as exc:
            raise type(exc)(named(str(exc))) from None
