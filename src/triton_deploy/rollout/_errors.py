"""The rollout driver's errors, one subtree of ``TritonDeployError``.

RolloutError
├── RolloutUsageError     bad arguments or a release the driver cannot work on;
│   │                     raised before anything changed
│   └── ReleaseNotFound   no such Helm release in the namespace
├── ClusterError          the Kubernetes API refused or failed a call
│   └── ClusterUnreachable   no answer from the Kubernetes API at all
├── HelmError             the helm CLI is missing or a helm call failed (its stderr included)
├── LockHeld              another rollout holds the release's Lease
├── RolloutConflict       a different rollout of this release is in progress
├── RepositoryRefused     the target repository (or its signature) does not verify;
│                         raised before anything changed
└── RolloutFailed         a check failed: the rollout was aborted or switched back
    ├── RolloutAborted    before promotion: the live color never stopped serving
    └── SwitchedBack      after promotion: traffic was switched back to the old color
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from triton_deploy.errors import TritonDeployError

if TYPE_CHECKING:
    from ._record import RolloutRecord

__all__ = [
    "ClusterError",
    "ClusterUnreachable",
    "HelmError",
    "LockHeld",
    "ReleaseNotFound",
    "RepositoryRefused",
    "RolloutAborted",
    "RolloutConflict",
    "RolloutError",
    "RolloutFailed",
    "RolloutUsageError",
    "SwitchedBack",
]


class RolloutError(TritonDeployError):
    """Root of the rollout driver's errors."""

    #: Process exit code of ``tdeploy rollout/promote/rollback/abort`` for this error.
    exit_code = 1


class RolloutUsageError(RolloutError):
    """Bad arguments, or a release the driver cannot work on. Nothing was changed."""


class ReleaseNotFound(RolloutUsageError):
    """No Helm release of that name in the namespace."""


class ClusterError(RolloutError):
    """A Kubernetes API call failed (forbidden, invalid, server error); ``status`` is the HTTP
    status when the API answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClusterUnreachable(ClusterError):
    """The Kubernetes API did not answer."""


class HelmError(RolloutError):
    """The helm CLI is missing, or a helm call failed."""


class LockHeld(RolloutError):
    """Another rollout of this release holds its Lease."""


class RolloutConflict(RolloutError):
    """A different rollout of this release is in progress."""


class RepositoryRefused(RolloutError):
    """The target repository, read from its URI, does not verify against its manifest (or its
    signature, or the pinned digest): raised before anything changed."""


class RolloutFailed(RolloutError):
    """A check failed; ``record`` holds every check with its numbers."""

    def __init__(self, message: str, record: RolloutRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class RolloutAborted(RolloutFailed):
    """Aborted before promotion: the live color kept serving untouched."""

    exit_code = 3


class SwitchedBack(RolloutFailed):
    """Post-promotion analysis failed: traffic went back to the old color."""

    exit_code = 4
