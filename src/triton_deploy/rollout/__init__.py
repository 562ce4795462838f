"""Blue/green (and, through a Gateway API GRPCRoute, canary and shadow) rollouts of a
triton-deploy Helm release, safe by themselves.

    from triton_deploy.rollout import ClusterAccess, RolloutDriver, RolloutRequest, Target

    driver = RolloutDriver(ClusterAccess(namespace="ml"))
    driver.rollout(RolloutRequest(release="triton", chart="./charts/triton-deploy",
                                  target=Target(model_repository="s3://models/triton/v2")))

The Kubernetes API through the official ``kubernetes`` client (the ``k8s`` extra), Helm through
the real ``helm`` CLI as a subprocess (every call logged). Modules:

- ``_driver``    ``RolloutDriver``: rollout, promote, abort, rollback, status (the steps)
- ``_canary``    ``--strategy canary`` and ``shadow``: the GRPCRoute's weights and mirror, step
  by step (``_traffic``: the route as values and as the cluster has it)
- ``_analysis``  pre-promotion checks (readiness, parity, SLO) and the post-promotion verdict
- ``_metrics``   Triton's Prometheus counters and summaries over a window
- ``_release``   the release's objects and colors; what a helm upgrade would change
- ``_record``    where a rollout stands, kept in a ConfigMap (resume, promote, status)
- ``_lock``      one rollout per release: a coordination.k8s.io Lease
- ``_helm``      the helm CLI;  ``_kube``: the Kubernetes API as JSON
- ``_options``   validated arguments;  ``_errors``: the error tree (below)

Errors (all ``RolloutError``, itself a ``triton_deploy.errors.TritonDeployError``):

    RolloutError
    ├── RolloutUsageError     bad arguments; nothing was changed
    │   └── ReleaseNotFound
    ├── ClusterError          └── ClusterUnreachable
    ├── HelmError
    ├── LockHeld              another rollout holds the release's Lease
    ├── RolloutConflict       a different rollout is in progress
    ├── RepositoryRefused     the target repository does not verify (nothing changed)
    └── RolloutFailed         a check failed (exit code 3: RolloutAborted, 4: SwitchedBack)
"""

from ._driver import ReleaseState, RolloutDriver
from ._errors import (
    ClusterError,
    ClusterUnreachable,
    HelmError,
    LockHeld,
    ReleaseNotFound,
    RepositoryRefused,
    RolloutAborted,
    RolloutConflict,
    RolloutError,
    RolloutFailed,
    RolloutUsageError,
    SwitchedBack,
)
from ._helm import Helm, HelmCall, parse_manifest
from ._kube import Cluster
from ._lock import RolloutLock, lease_state
from ._metrics import WindowStats, parse_triton_metrics, window_stats
from ._options import ClusterAccess, RolloutRequest, parse_duration, validate_target
from ._record import (
    CheckResult,
    CheckStatus,
    Phase,
    RecordStore,
    Result,
    RolloutRecord,
    Settings,
    Target,
)
from ._release import (
    Change,
    DeploymentStatus,
    ReleaseObjects,
    connection_drain_s,
    manifest_changes,
)
from ._traffic import StepRecord, TrafficState, parse_steps

__all__ = [
    "Change",
    "CheckResult",
    "CheckStatus",
    "Cluster",
    "ClusterAccess",
    "ClusterError",
    "ClusterUnreachable",
    "DeploymentStatus",
    "Helm",
    "HelmCall",
    "HelmError",
    "LockHeld",
    "Phase",
    "RecordStore",
    "ReleaseNotFound",
    "ReleaseObjects",
    "ReleaseState",
    "RepositoryRefused",
    "Result",
    "RolloutAborted",
    "RolloutConflict",
    "RolloutDriver",
    "RolloutError",
    "RolloutFailed",
    "RolloutLock",
    "RolloutRecord",
    "RolloutRequest",
    "RolloutUsageError",
    "Settings",
    "StepRecord",
    "SwitchedBack",
    "Target",
    "TrafficState",
    "WindowStats",
    "connection_drain_s",
    "lease_state",
    "manifest_changes",
    "parse_duration",
    "parse_manifest",
    "parse_steps",
    "parse_triton_metrics",
    "validate_target",
    "window_stats",
]
