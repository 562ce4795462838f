"""The admin key: who may change a local server's state, and how tdeploy commands learn it.

Triton 2.51 restricts a protocol to callers that send a header (``--grpc-restricted-protocol``
and ``--http-restricted-api``, ``<protocols>:<key>=<value>``; gRPC callers send the header as
``triton-grpc-protocol-<key>``). ``TritonServer`` restricts every API that changes the
server's state, on gRPC and HTTP alike, with a secret made for each run:

- ``model-repository``: load, unload (anyone could otherwise take models down), index;
- ``shared-memory``: register or unregister regions;
- ``trace`` and ``logging``: turn request tracing (TENSORS: request data to disk) or logging
  on or off. Triton restricts a protocol as a whole, so reading those settings needs the key
  too.

Health, metadata, model config, statistics and inference stay open: they change nothing.

The header is ``triton-admin-key``, the chart's default (``triton.restrictedProtocols.headerKey``),
so one ``--admin-key`` works against a local server and a cluster alike. The value is
``--admin-key`` / ``TDEPLOY_ADMIN_KEY`` when given, else a fresh random one. ``tdeploy serve``
writes it to a run-state file that only its user can read (a 0600 file in a 0700 folder:
``$TDEPLOY_STATE_DIR``, else ``$XDG_RUNTIME_DIR/tdeploy``, else ``~/.local/state/tdeploy``),
one per gRPC port, removed when serve exits; ``tdeploy drain`` (and any command that needs the
key) finds it there from the ``--url`` it is given when no key is passed.

    key = admin_key_for("127.0.0.1:8001")        # from --admin-key, TDEPLOY_ADMIN_KEY or the file
    client.unload_model("m", headers=grpc_admin_headers(key))
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "ADMIN_HEADER",
    "ADMIN_KEY_ENV",
    "ADMIN_PROTOCOLS",
    "RunState",
    "admin_key_for",
    "grpc_admin_headers",
    "http_admin_headers",
    "new_admin_key",
    "state_directory",
]

ADMIN_HEADER = "triton-admin-key"
ADMIN_KEY_ENV = "TDEPLOY_ADMIN_KEY"
#: Triton's protocol groups that can change a server's state (gRPC names = HTTP API names).
ADMIN_PROTOCOLS = ("model-repository", "shared-memory", "trace", "logging")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1", "[::1]", "::"}


def new_admin_key() -> str:
    return secrets.token_hex(32)


def grpc_admin_headers(key: str | None) -> dict[str, str]:
    return {f"triton-grpc-protocol-{ADMIN_HEADER}": key} if key else {}


def http_admin_headers(key: str | None) -> dict[str, str]:
    return {ADMIN_HEADER: key} if key else {}


def state_directory() -> Path:
    if os.environ.get("TDEPLOY_STATE_DIR"):
        return Path(os.environ["TDEPLOY_STATE_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "tdeploy"
    return Path.home() / ".local" / "state" / "tdeploy"


@dataclass(frozen=True)
class RunState:
    """What a running ``tdeploy serve`` tells the user's other tdeploy commands."""

    pid: int
    grpc_url: str
    http_url: str
    metrics_url: str
    admin_key: str

    @staticmethod
    def path_for(grpc_port: int) -> Path:
        return state_directory() / f"serve-{grpc_port}.json"

    def write(self) -> Path:
        """Write (0600, in a 0700 folder) and return the file."""
        directory = state_directory()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        path = self.path_for(int(self.grpc_url.rsplit(":", 1)[1]))
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as f:
            json.dump(asdict(self), f)
        os.replace(temporary, path)
        return path

    def remove(self) -> None:
        path = self.path_for(int(self.grpc_url.rsplit(":", 1)[1]))
        with contextlib.suppress(OSError):
            if RunState.read(path) == self:
                path.unlink()

    @staticmethod
    def read(path: Path) -> RunState | None:
        try:
            return RunState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    @staticmethod
    def for_url(url: str) -> RunState | None:
        """The run state of the local ``tdeploy serve`` listening at ``url`` (host:port), if
        one is running (its pid alive)."""
        host, _, port = url.rpartition(":")
        if host.removeprefix("grpc://") not in _LOCAL_HOSTS or not port.isdigit():
            return None
        state = RunState.read(RunState.path_for(int(port)))
        if state is None:
            return None
        try:
            os.kill(state.pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return state


def admin_key_for(url: str, given: str | None = None) -> str | None:
    """The admin key for ``url``: ``given`` (``--admin-key``), ``TDEPLOY_ADMIN_KEY``, or the
    run-state file of the local ``tdeploy serve`` at that address; None when none is known."""
    if given:
        return given
    if os.environ.get(ADMIN_KEY_ENV):
        return os.environ[ADMIN_KEY_ENV]
    state = RunState.for_url(url)
    return state.admin_key if state else None
