"""Run the real Triton Inference Server (from the nvidia-pytriton wheel) on a model repository.

    with TritonServer(Path("model_repository")) as server:
        print(server.grpc_url)   # "127.0.0.1:PORT", ready to serve

What it does beyond starting the binary:

- **Ports**: free ones unless given; given ones are checked first, and a busy port is an error
  naming it and the process that holds it (``PortInUseError``).
- **Readiness** is polled over gRPC (``ServerReady``); ``start()`` raises ``ServerStartError``
  with the server's own error lines if it exits or does not become ready.
- **HTTP inference is off** unless ``http_inference=True``: Triton 2.51 crashes on deeply nested
  JSON, and gRPC is the product's protocol. Health, metadata, model config and statistics stay
  open on the HTTP port; the APIs that parse a JSON body (inference, model repository, shared
  memory, trace, logging) are restricted behind a header whose value nobody knows. With
  ``http_inference=True`` Triton's HTTP port moves to a private loopback port and an
  ``HttpGuard`` on the public one bounds body size and JSON nesting.
- **Admin API closed**: the APIs that change the server's state (model repository, shared
  memory, trace, logging) are restricted on gRPC and HTTP with a key made for this run
  (``admin_key``, or a random one; ``admin_grpc_headers`` / ``admin_http_headers``), see
  ``runtime.admin``. ``restrict_admin=False`` leaves them open.
- **Helpers**: ``shedder_alive`` / ``restart_shedder()`` and the stubs' ``stub_watch`` /
  ``reload_model()`` let a ``Supervisor`` keep the whole serving path up; ``is_ready()`` is
  false while any part of it is known broken (``broken``).
- **Drain**: the server runs in explicit model-control mode with every model loaded, and
  ``stop()`` unloads ensembles and Python models first, then the rest, waiting for in-flight
  requests (``runtime.drain``), before SIGTERM; within ``exit_timeout_s`` in all.
- **No debris**: tritonserver gets SIGKILL from the kernel if its starter dies
  (PR_SET_PDEATHSIG); a reaper process kills its Python backend stubs and removes its
  shared-memory regions and work folder if the starter dies without cleaning up; ``stop()``
  does the same itself.
- Models whose build manifest says parity FAILED are not loaded (nor the ensembles using them)
  unless ``allow_failed_parity=True``; TensorRT models are left out without a GPU.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import re
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import tritonclient.grpc as grpcclient

from triton_deploy.errors import ServerStartError
from triton_deploy.resources import resource_error
from triton_deploy.runtime.admin import (
    ADMIN_HEADER,
    ADMIN_PROTOCOLS,
    grpc_admin_headers,
    http_admin_headers,
    new_admin_key,
)
from triton_deploy.runtime.drain import DrainReport, drain
from triton_deploy.runtime.installation import TritonInstallation, prepare_backend_directory
from triton_deploy.runtime.lifecycle import (
    Reaper,
    check_ports_free,
    cleanup,
    new_shm_prefix,
    spawn,
    sweep_stale_shm_regions,
)
from triton_deploy.runtime.repository import (
    failed_parity,
    gpu_available,
    make_view,
    plan_view,
    read_repository,
)
from triton_deploy.runtime.shedder import Shedder, haproxy_binary, retarget, with_access_log
from triton_deploy.runtime.stubs import StubWatch

if TYPE_CHECKING:  # aiohttp is imported only when HTTP inference is on
    from triton_deploy.runtime.http_guard import HttpGuard

__all__ = ["HTTP_BODY_APIS", "HTTP_OFF_HEADER", "TritonServer", "describe_exit", "free_port"]

# Triton error lines: "E1122 04:50:00.123 123 file.cc:42] message" (default log format) or
# "2026-11-22T04:50:00Z E 123 file.cc:42] message" (--log-format=ISO8601).
_ERROR_LINE = re.compile(r"^(E\d{4} |\d{4}-\d\d-\d\dT\S+ E )")
_UNAVAILABLE = re.compile(r"\|\s*UNAVAILABLE:")

#: Triton's HTTP API groups that parse a JSON request body (the crash needs one).
HTTP_BODY_APIS = ("inference", "model-repository", "shared-memory", "trace", "logging")
#: The header Triton names when a restricted HTTP API is called while HTTP inference is off.
HTTP_OFF_HEADER = "tdeploy-http-inference-off-use-grpc"


_handed_out: set[int] = set()
#: Ports handed out lately, each held by an exclusive lock on a file named after it, so that
#: other processes (a second ``tdeploy serve``, parallel test workers) skip them until their
#: user has bound them; the kernel drops a lock when its holder exits.
_PORT_LOCKS = Path(tempfile.gettempdir()) / "tdeploy-ports"
_held_locks: collections.deque[int] = collections.deque()
_HELD_LOCKS_MAX = 64


def _claim(port: int) -> bool:
    """Lock ``port`` against other processes' ``free_port``; false if one of them holds it."""
    try:
        _PORT_LOCKS.mkdir(mode=0o1777, exist_ok=True)
        fd = os.open(_PORT_LOCKS / str(port), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        return True  # no shared lock folder here (another user's, read-only): best effort
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held_locks.append(fd)
    while len(_held_locks) > _HELD_LOCKS_MAX:
        os.close(_held_locks.popleft())  # handed out long ago: bound by now, or never used
    return True


def _hand_out(port: int) -> bool:
    """Take ``port`` for this process: false if this process handed it out before (bind(0)
    may repeat one) or another process claimed it."""
    if port in _handed_out or not _claim(port):
        return False
    _handed_out.add(port)
    return True


def free_port() -> int:
    """A free TCP port that neither this process nor, lately, another on this machine handed out.

    bind(0) may give two processes the same port between one's release and its user's bind;
    a lock on a file named after the port (see ``_claim``) keeps that from happening.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if _hand_out(port):
            return port


def listening_socket(host: str = "127.0.0.1", backlog: int = 128) -> socket.socket:
    """A TCP socket listening on a free port of ``host`` that no process here claimed through
    ``free_port``: bind(0) alone may land on a port handed out to a server that has not bound
    it yet, or never will (``--allow-http=false``). The port stays claimed by this process."""
    while True:
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            if _hand_out(int(sock.getsockname()[1])):
                sock.listen(backlog)
                return sock
        except BaseException:
            sock.close()
            raise
        sock.close()


def describe_exit(code: int | None) -> str:
    """'killed by SIGSEGV (signal 11)' / 'exited with code 1'."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} (signal {-code})"
    return f"exited with code {code}"


def _flag_values(args: Sequence[str], flag: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]


class TritonServer:
    """A tritonserver process serving ``repository`` (see the module docstring)."""

    def __init__(
        self,
        repository: Path,
        *,
        grpc_port: int | None = None,
        http_port: int | None = None,
        metrics_port: int | None = None,
        extra_args: Sequence[str] = (),
        gpu: bool | None = None,
        address: str = "127.0.0.1",
        exit_timeout_s: int = 30,
        startup_timeout_s: float = 180.0,
        on_log_line: Callable[[str], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        http_inference: bool = False,
        http_max_body_bytes: int | None = None,
        http_max_json_depth: int | None = None,
        allow_failed_parity: bool = False,
        max_inflight: int | None = None,
        max_queued: int | None = None,
        shedder_access_log: Path | None = None,
        shedder_config: str | None = None,
        admin_key: str | None = None,
        restrict_admin: bool = True,
    ) -> None:
        self.repository = Path(repository).resolve()
        self._given_ports = {
            "gRPC": grpc_port or 0,
            "HTTP": http_port or 0,
            "metrics": metrics_port or 0,
        }
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.address = address
        self.extra_args = list(extra_args)
        self.gpu = gpu_available() if gpu is None else gpu
        self.exit_timeout_s = exit_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.on_log_line = on_log_line
        self.on_event = on_event
        self.http_inference = http_inference
        self.http_max_body_bytes = http_max_body_bytes
        self.http_max_json_depth = http_max_json_depth
        self.allow_failed_parity = allow_failed_parity
        self.max_inflight = max_inflight or None
        self.max_queued = max_queued
        self.shedder_access_log = shedder_access_log
        self.shedder_config = shedder_config  # e.g. the chart's sidecar config, retargeted
        # Callers that restrict Triton's protocols themselves (--triton-arg, the chart's args
        # in tests) keep their own key: this one would not open what theirs restricts.
        own = any(a.startswith("--grpc-restricted-protocol") for a in self.extra_args)
        self.admin_key = (admin_key or new_admin_key()) if restrict_admin and not own else None
        self.broken: dict[str, str] = {}  # part of the serving path -> why (readiness false)
        self.stub_watch: StubWatch | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=5000)
        self.loaded: list[str] = []
        self.skipped: dict[str, str] = {}
        self.last_drain: DrainReport | None = None
        self.returncode: int | None = None
        self.shm_prefix = ""
        self._triton_http_port = self.http_port
        self._triton_grpc_port = self.grpc_port
        self._shedder: Shedder | None = None
        self._process: subprocess.Popen[str] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._reader: threading.Thread | None = None
        self._reaper: Reaper | None = None
        self._guard: HttpGuard | None = None
        self._lock = threading.Lock()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def grpc_url(self) -> str:
        return f"{self._host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self._host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._host}:{self.metrics_port}/metrics"

    @property
    def admin_url(self) -> str:
        """Triton's own gRPC endpoint, not the shedder's: drain, reloads, state checks."""
        return self._admin_url

    @property
    def _admin_url(self) -> str:
        """Triton's own gRPC endpoint (behind the shedder when there is one)."""
        return f"{self._host if not self.max_inflight else '127.0.0.1'}:{self._triton_grpc_port}"

    @property
    def _host(self) -> str:
        return "127.0.0.1" if self.address in ("0.0.0.0", "127.0.0.1") else self.address

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def shedder_pid(self) -> int | None:
        return self._shedder.pid if self._shedder else None

    @property
    def admin_grpc_headers(self) -> dict[str, str]:
        """Headers that pass this server's admin restriction over gRPC ({} when open)."""
        return grpc_admin_headers(self.admin_key)

    @property
    def admin_http_headers(self) -> dict[str, str]:
        return http_admin_headers(self.admin_key)

    @property
    def running(self) -> bool:
        """True while tritonserver is started and has not exited (or crashed)."""
        return self._process is not None and self._process.poll() is None

    @property
    def drainable(self) -> bool:
        """True when models can be unloaded one by one (explicit model-control mode) over a
        plaintext gRPC port; otherwise ``stop()`` relies on Triton's own SIGTERM path."""
        modes = _flag_values(self.extra_args, "--model-control-mode")
        return (not modes or modes[-1] == "explicit") and not self._grpc_tls

    def command(
        self, installation: TritonInstallation, backend_directory: Path, repository: Path
    ) -> list[str]:
        http_address = "127.0.0.1" if self.http_inference else self.address
        grpc_address = "127.0.0.1" if self.max_inflight else self.address
        args = [
            str(installation.binary),
            f"--model-repository={repository}",
            f"--backend-directory={backend_directory}",
            f"--grpc-port={self._triton_grpc_port}",
            f"--http-port={self._triton_http_port}",
            f"--metrics-port={self.metrics_port}",
            f"--grpc-address={grpc_address}",
            f"--http-address={http_address}",
            f"--metrics-address={self.address}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--model-control-mode=explicit",
            "--load-model=*",
        ]
        given = {arg.split("=", 1)[0] for arg in self.extra_args}
        if "--model-control-mode" in given:
            given.add("--load-model")
        args = [a for a in args if a.split("=", 1)[0] not in given]
        if self.shm_prefix and not any(
            "shm-region-prefix-name" in v for v in _flag_values(self.extra_args, "--backend-config")
        ):
            args.append(f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}")
        restricted = {
            flag: {
                api
                for value in _flag_values(self.extra_args, flag)
                for api in value.partition(":")[0].split(",")
            }
            for flag in ("--grpc-restricted-protocol", "--http-restricted-api")
        }
        if self.admin_key:
            for flag, already in restricted.items():
                if already:  # the caller restricts this protocol's APIs its own way
                    continue
                args.append(f"{flag}={','.join(ADMIN_PROTOCOLS)}:{ADMIN_HEADER}={self.admin_key}")
                already.update(ADMIN_PROTOCOLS)
        if not self.http_inference:
            off = [api for api in HTTP_BODY_APIS if api not in restricted["--http-restricted-api"]]
            if off:
                token = secrets.token_hex(16)
                args.append(f"--http-restricted-api={','.join(off)}:{HTTP_OFF_HEADER}={token}")
        return args + self.extra_args

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> TritonServer:
        installation = TritonInstallation.locate()
        models = read_repository(self.repository)
        refused = {} if self.allow_failed_parity else failed_parity(self.repository)
        self.loaded, self.skipped = plan_view(models, gpu=self.gpu, refused=refused)
        if not self.loaded:
            raise ServerStartError(
                f"nothing in {self.repository} can load here: "
                + "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
            )
        check_ports_free(self.address, {k: v for k, v in self._given_ports.items() if v})
        if self.http_inference:
            self._triton_http_port = free_port()
        if self.max_inflight:
            haproxy_binary()  # fail early, with how to install it
            self._triton_grpc_port = free_port()
        sweep_stale_shm_regions()
        self.shm_prefix = new_shm_prefix()
        self.returncode = None
        self._workdir = tempfile.TemporaryDirectory(prefix="tdeploy-triton-")
        work = Path(self._workdir.name)
        try:
            backends = prepare_backend_directory(work / "backends", installation)
            repository = (
                make_view(self.repository, self.loaded, work / "repository")
                if self.skipped
                else self.repository
            )
            self._reaper = Reaper().start()
            self._process = spawn(
                self.command(installation, backends, repository),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env=installation.environment(),
                start_new_session=True,  # Ctrl-C reaches us; we drain, then forward SIGTERM
            )
        except BaseException as exc:  # nothing may stay behind: the work folder, the reaper
            if self._reaper is not None:
                self._reaper.release()
                self._reaper = None
            with contextlib.suppress(OSError):
                self._workdir.cleanup()
            self._workdir = None
            error = resource_error(exc, where=work) if isinstance(exc, Exception) else None
            if error is not None:
                raise error from None
            raise
        self._reaper.watch(
            pgid=self._process.pid, shm_prefix=self.shm_prefix, workdir=self._workdir.name
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
            self._check_loaded()
            if self.http_inference:
                self._start_guard()
            if self.max_inflight:
                self._shedder = Shedder(
                    (self.address, self.grpc_port),
                    upstream_port=self._triton_grpc_port,
                    max_inflight=self.max_inflight,
                    max_queued=self.max_queued,
                    access_log=self.shedder_access_log,
                    config=self._retargeted_shedder_config(),
                ).start()
            self.broken = {}
            self.stub_watch = StubWatch(self._process.pid, self.loaded)
            self.stub_watch.scan()
        except BaseException:
            self.stop(drain_first=False)
            raise
        return self

    # -- the helpers a Supervisor keeps up ------------------------------------------------------
    @property
    def shedder_alive(self) -> bool:
        """True without a shedder, or while its HAProxy runs."""
        return self._shedder is None or self._shedder.alive

    @property
    def shedder_exit(self) -> int | None:
        return self._shedder.exit_code if self._shedder else None

    def restart_shedder(self) -> None:
        """Start the dead shedder again on the same ports (``ServerStartError`` if it cannot)."""
        if self._shedder is None:
            return
        self._shedder.restart()

    @property
    def reaper_alive(self) -> bool:
        return self._reaper is None or self._reaper.alive

    def restart_reaper(self) -> None:
        """A new reaper watching this server (the old one died: the cleanup of a SIGKILLed
        serve would be lost otherwise)."""
        if self._process is None or self._reaper is None:
            return
        self._reaper = Reaper().start()
        self._reaper.watch(
            pgid=self._process.pid,
            shm_prefix=self.shm_prefix,
            workdir=self._workdir.name if self._workdir else None,
        )

    def reload_model(self, model: str, timeout_s: float = 120.0) -> None:
        """Load ``model`` again (new instances, new stubs); raises ``ServerStartError`` with
        Triton's message when that fails."""
        from tritonclient.utils import InferenceServerException

        try:
            with grpcclient.InferenceServerClient(self._admin_url) as client:
                client.load_model(model, headers=self.admin_grpc_headers, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise ServerStartError(f"reloading {model} failed: {exc.message()}") from None

    def _retargeted_shedder_config(self) -> str | None:
        """``shedder_config`` (a pod's, e.g. the chart's sidecar) on this server's ports."""
        if not self.shedder_config:
            return None
        config = retarget(
            self.shedder_config,
            listen=(self.address, self.grpc_port),
            upstream=("127.0.0.1", self._triton_grpc_port),
            metrics=("127.0.0.1", free_port())
            if "\nfrontend stats\n" in self.shedder_config
            else None,
        )
        return with_access_log(config) if self.shedder_access_log else config

    def _check_loaded(self) -> None:
        """Every model serve planned is READY (a model folder that vanished while the server
        started is simply not there: Triton's readiness alone would not say so)."""
        given = {arg.split("=", 1)[0] for arg in self.extra_args}
        if given & {"--model-control-mode", "--load-model"} or self._grpc_tls:
            return
        from tritonclient.utils import InferenceServerException

        try:
            with grpcclient.InferenceServerClient(self._admin_url) as client:
                index = client.get_model_repository_index(
                    headers=self.admin_grpc_headers, as_json=True
                )
        except InferenceServerException:  # restricted with the caller's own key: not ours to check
            return
        states = {m["name"]: m for m in index.get("models", [])}
        problems = []
        for name in self.loaded:
            entry = states.get(name, {})
            if entry.get("state") == "READY":
                continue
            folder = self.repository / name
            if not folder.is_dir():
                problems.append(f"{folder}: no such file or directory (removed while loading)")
            else:
                reason = entry.get("reason") or entry.get("state") or "not found by the server"
                problems.append(f"{name}: {reason}")
        if problems:
            raise ServerStartError(f"not every model loaded: {'; '.join(problems)}")

    def _start_guard(self) -> None:
        from triton_deploy.runtime.http_guard import (
            DEFAULT_MAX_BODY_BYTES,
            DEFAULT_MAX_JSON_DEPTH,
            HttpGuard,
        )

        try:
            self._guard = HttpGuard(
                (self.address, self.http_port),
                upstream=f"http://127.0.0.1:{self._triton_http_port}",
                max_body_bytes=self.http_max_body_bytes or DEFAULT_MAX_BODY_BYTES,
                max_json_depth=self.http_max_json_depth or DEFAULT_MAX_JSON_DEPTH,
            ).start()
        except OSError as exc:
            raise ServerStartError(
                f"HTTP guard could not listen on {self.http_url}: {exc}"
            ) from exc

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.log.append(line)
            if self.on_log_line is not None:
                with contextlib.suppress(OSError, ValueError):  # e.g. the terminal was closed
                    self.on_log_line(line)

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            with contextlib.suppress(OSError, ValueError):
                self.on_event(message)

    def error_lines(self) -> list[str]:
        lines = list(self.log)
        return [ln for ln in lines if _ERROR_LINE.match(ln) or _UNAVAILABLE.search(ln)]

    def _start_failure_lines(self, tail: int = 20) -> list[str]:
        """What to show when tritonserver died while starting: its error lines, and when a
        signal killed it (an abort, a crash) also its last lines, where the C++ runtime's own
        words ("terminate called after throwing ...") stand without an error prefix."""
        errors = self.error_lines()
        code = self._process.returncode if self._process is not None else None
        if errors and (code is None or code >= 0):
            return errors
        last = list(self.log)[-tail:]
        return [ln for ln in errors if ln not in last] + last

    @property
    def _grpc_tls(self) -> bool:
        return any(
            _flag_values(self.extra_args, flag)[-1:] == ["true"]
            for flag in ("--grpc-use-ssl", "--grpc-use-ssl-mutual")
        )

    def is_ready(self) -> bool:
        """Server readiness over gRPC (independent of whether HTTP inference is on).

        With TLS on gRPC (our probe has no client certificate), over the HTTP health
        endpoint instead, which stays open whether HTTP inference is on or off (with HTTP off
        too: the gRPC port listening).
        """
        if self._grpc_tls:
            if self._triton_http_port not in self._other_ports():  # no HTTP either: listening
                return self._listening(self._triton_grpc_port)
            url = f"http://{self._host}:{self._triton_http_port}/v2/health/ready"
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    return bool(reply.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        watch = self.stub_watch
        if self.broken or not self.shedder_alive or (watch is not None and watch.any_dead()):
            return False
        try:
            with grpcclient.InferenceServerClient(self._admin_url) as client:
                return bool(client.is_server_ready(client_timeout=2))
        except Exception:  # connection refused, deadline, a server starting up: not ready
            return False

    def _other_ports(self) -> list[int]:
        def on(flag: str) -> bool:
            return _flag_values(self.extra_args, flag)[-1:] != ["false"]

        ports = [self._triton_http_port] if on("--allow-http") else []
        return ports + ([self.metrics_port] if on("--allow-metrics") else [])

    def _listening(self, *ports: int) -> bool:
        for port in ports:
            try:
                socket.create_connection((self._host, port), timeout=1).close()
            except OSError:
                return False
        return True

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                if self._reader is not None:
                    self._reader.join(timeout=5)
                raise ServerStartError(
                    f"tritonserver {describe_exit(self._process.returncode)} while starting "
                    f"on {self.repository}",
                    self._start_failure_lines(),
                )
            # gRPC starts first; HTTP and metrics (when on) listen a moment later
            if self.is_ready() and self._listening(*self._other_ports()):
                return
            time.sleep(0.2)
        raise ServerStartError(
            f"tritonserver did not become ready within {self.startup_timeout_s:.0f} s",
            self.error_lines() or list(self.log)[-20:],
        )

    def stop(
        self,
        timeout_s: float | None = None,
        *,
        drain_first: bool = True,
        kill_grace_s: float = 10.0,
    ) -> int | None:
        """Drain (see the module docstring), SIGTERM, SIGKILL as a last resort; clean up.

        Returns tritonserver's exit code (negative: the signal that ended it), or None when it
        was not running. ``timeout_s`` (default ``exit_timeout_s``) bounds drain and exit
        together, plus ``kill_grace_s`` before SIGKILL.
        """
        with self._lock:
            process, self._process = self._process, None
        self.stub_watch = None  # what the drain unloads is not a stub dying
        budget = float(timeout_s if timeout_s is not None else self.exit_timeout_s)
        deadline = time.monotonic() + budget
        code = None
        if self._guard is not None:
            self._guard.stop()
            self._guard = None
        if process is not None:
            if process.poll() is None and drain_first:
                self._event("draining: no new requests, waiting for the in-flight ones")
                # the shedder's queue is in flight too: let it through before unloading
                if self._shedder is not None and not self._shedder.drain(timeout_s=budget):
                    self._event("load shedder still busy at the exit timeout")
                if self.drainable:
                    remaining = max(deadline - time.monotonic(), 0.0)
                    self.last_drain = drain(
                        self._admin_url,
                        timeout_s=remaining,
                        headers=self.admin_grpc_headers,
                        log=self._event,
                    )
                    self._event(self.last_drain.summary())
            if self._shedder is not None:
                self._shedder.stop()
                self._shedder = None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=max(deadline - time.monotonic(), 0) + kill_grace_s)
            except subprocess.TimeoutExpired:
                self._event(f"tritonserver did not exit within {budget:.0f} s: SIGKILL")
                process.kill()
                code = process.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)
            self.returncode = code
            self._cleanup(process.pid)
        return code

    def _cleanup(self, pgid: int) -> None:
        """Stubs left in the process group, our shared-memory regions, the work folder."""
        for done in cleanup(pgid=pgid, shm_prefix=self.shm_prefix, workdir=None):
            self._event(done)
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                self._workdir.cleanup()
            self._workdir = None
        if self._reaper is not None:
            self._reaper.release()
            self._reaper = None

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Block until the server exits by itself (or ``timeout_s`` passes: None)."""
        process = self._process
        if process is None:
            return self.returncode
        try:
            self.returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
