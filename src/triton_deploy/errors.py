"""The project's error tree. Every error raised on purpose by triton-deploy derives from one root.

    TritonDeployError
    ├── SpecError              a models.yaml that is not valid (names file, key and reason)
    ├── BuildError             a model could not be built or failed verification
    │   ├── ArtifactError         a model file that is missing, unreadable or not what it claims
    │   └── EnsembleWiringError   an ensemble whose tensors do not connect
    ├── RuntimeEnvironmentError   the local Triton runtime cannot be set up here
    ├── ResourceError          the machine refused: disk full, permission denied, out of file
    │                          descriptors, a file that vanished (names the path and the cause)
    ├── ServerStartError       tritonserver exited or did not become ready (with its error lines)
    │   └── PortInUseError        a port it needs is taken (names the port and who holds it)
    ├── VerificationError      a served model disagrees with its source framework
    └── ObservabilityError     bad trace settings, an unreadable trace file or inference log,
                               a /metrics endpoint that cannot be scraped

The client library (``triton_deploy.clients``) has its own subtree rooted at ``ClientError``,
itself a ``TritonDeployError``.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "BuildError",
    "EnsembleWiringError",
    "ObservabilityError",
    "PortInUseError",
    "ResourceError",
    "RuntimeEnvironmentError",
    "ServerStartError",
    "SpecError",
    "TritonDeployError",
    "VerificationError",
]


class TritonDeployError(Exception):
    """Root of every error triton-deploy raises on purpose."""


class SpecError(TritonDeployError):
    """The build spec (models.yaml) is invalid."""


class BuildError(TritonDeployError):
    """A model could not be converted, written or verified."""


class ArtifactError(BuildError):
    """A model file (or samples file) that is missing, unreadable, or not what it claims to be."""


class EnsembleWiringError(BuildError):
    """An ensemble's steps do not connect: names the tensor at fault."""


class RuntimeEnvironmentError(TritonDeployError):
    """The local Triton runtime (nvidia-pytriton) is missing or broken."""


class ResourceError(TritonDeployError):
    """The machine refused a file or process operation: names the path and the cause
    (``triton_deploy.resources.resource_error`` makes it from the ``OSError``)."""

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        self.path = path
        self.errno = errno
        super().__init__(message)


class ServerStartError(TritonDeployError):
    """tritonserver exited early or did not become ready in time."""

    def __init__(self, message: str, log_lines: list[str] | None = None) -> None:
        self.log_lines = log_lines or []
        if self.log_lines:
            message = message + "\n" + "\n".join(f"  | {line}" for line in self.log_lines)
        super().__init__(message)


class PortInUseError(ServerStartError):
    """A port the server needs is already taken; names the port and, if visible, the holder."""

    def __init__(self, message: str, *, port: int, holder: str | None = None) -> None:
        self.port = port
        self.holder = holder
        super().__init__(message)


class VerificationError(TritonDeployError):
    """A served model's outputs differ from its source framework beyond tolerance."""


class ObservabilityError(TritonDeployError):
    """Tracing, inference log or monitoring input that cannot be used: names what is wrong."""
