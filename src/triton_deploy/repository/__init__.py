"""The model repository as a typed format: the one module the build writes and everything
else reads (serve, bench, load generator, rollout, monitor).

    build ──writes──▶ triton_deploy.repository ◀──reads── runtime, bench, rollout, observability

What is in it:

- layout: ``MANIFEST``, ``SIGNATURE``, ``CONFIG``, ``GOLDEN_FILE``, ``PLANS_SCRIPT``;
- model folders: ``read_repository`` / ``read_config`` (tritonclient's protobuf classes);
- golden cases: ``GoldenCase``, ``load_golden_cases``, ``parity`` (the comparison);
- the manifest: ``Manifest`` (pydantic, schema version, every file's sha256 and size,
  per-model provenance), ``read_manifest`` / ``write_manifest`` (atomic), ``manifest_digest``;
- integrity: ``check_repository`` / ``verify_repository`` (``IntegrityError`` names each file);
- signatures: ``sign_repository`` / ``verify_signature`` (OpenSSF model signing);
- the policy a server start applies: ``verify_for_serving`` with a ``TrustPolicy``, and
  ``verify_uri`` for a repository read from object storage as the pods read it (rollouts);
- request inputs: ``request_inputs`` (golden cases, else synthesised from the config).

Errors (all ``TritonDeployError``)::

    TritonDeployError
    ├── ManifestError     a manifest.json that cannot be read or is not a build manifest
    ├── IntegrityError    files that differ from the manifest, or a manifest that is not the pin
    ├── SignatureError    no signature, one that does not verify, or signing that failed
    └── RemoteRepositoryError   a repository URI that cannot be read from here
"""

from ._config import GPU_ONLY_PLATFORMS, RepositoryModel, read_config, read_repository
from ._golden import (
    GoldenCase,
    artifacts_directory,
    golden_case_path,
    load_golden_cases,
    pack_arrays,
    parity,
    unpack_arrays,
)
from ._inputs import (
    GOLDEN,
    SYNTHETIC,
    RequestInputs,
    datatype,
    request_inputs,
    synthesise_inputs,
)
from ._integrity import (
    FileProblem,
    IntegrityError,
    IntegrityReport,
    check_repository,
    verify_repository,
)
from ._layout import (
    CONFIG,
    GOLDEN_FILE,
    IGNORED_DIRECTORIES,
    MANIFEST,
    NODE_GENERATED,
    PLANS_SCRIPT,
    SIGNATURE,
)
from ._manifest import (
    SCHEMA_VERSION,
    FileDigest,
    Manifest,
    ManifestError,
    ModelEntry,
    Parity,
    Tolerance,
    digests,
    file_digest,
    manifest_digest,
    read_manifest,
    write_manifest,
)
from ._remote import RemoteRepositoryError, fetch_repository, readable, verify_uri
from ._signing import SignatureError, sign_repository, signature_path, verify_signature
from ._trust import TrustPolicy, TrustReport, verify_for_serving

__all__ = [
    "CONFIG",
    "GOLDEN",
    "GOLDEN_FILE",
    "GPU_ONLY_PLATFORMS",
    "IGNORED_DIRECTORIES",
    "MANIFEST",
    "NODE_GENERATED",
    "PLANS_SCRIPT",
    "SCHEMA_VERSION",
    "SIGNATURE",
    "SYNTHETIC",
    "FileDigest",
    "FileProblem",
    "GoldenCase",
    "IntegrityError",
    "IntegrityReport",
    "Manifest",
    "ManifestError",
    "ModelEntry",
    "Parity",
    "RemoteRepositoryError",
    "RepositoryModel",
    "RequestInputs",
    "SignatureError",
    "Tolerance",
    "TrustPolicy",
    "TrustReport",
    "artifacts_directory",
    "check_repository",
    "datatype",
    "digests",
    "fetch_repository",
    "file_digest",
    "golden_case_path",
    "load_golden_cases",
    "manifest_digest",
    "pack_arrays",
    "parity",
    "read_config",
    "read_manifest",
    "read_repository",
    "readable",
    "request_inputs",
    "sign_repository",
    "signature_path",
    "synthesise_inputs",
    "unpack_arrays",
    "verify_for_serving",
    "verify_repository",
    "verify_signature",
    "verify_uri",
    "write_manifest",
]
