"""Run the real Triton Inference Server (from the nvidia-pytriton wheel) on a model repository.

    with TritonServer(Path("model_repository")) as server:
        print(server.grpc_url)   # "127.0.0.1:PORT", ready to serve

The server starts on free ports unless ports are given, is polled until ``/v2/health/ready``
answers, and on failure raises ``ServerStartError`` carrying the server's own error lines.
``stop()`` sends SIGTERM: Triton stops accepting requests and lets in-flight ones finish
(``--exit-timeout-secs``) before it exits.
"""

from __future__ import annotations

import collections
import contextlib
import re
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

from triton_deploy.errors import ServerStartError
from triton_deploy.runtime.installation import TritonInstallation, prepare_backend_directory
from triton_deploy.runtime.repository import (
    gpu_available,
    make_view,
    plan_view,
    read_repository,
)

__all__ = ["TritonServer", "free_port"]

# Triton error lines: "E1122 04:50:00.123 123 file.cc:42] message" (default log format) or
# "2026-11-22T04:50:00Z E 123 file.cc:42] message" (--log-format=ISO8601).
_ERROR_LINE = re.compile(r"^(E\d{4} |\d{4}-\d\d-\d\dT\S+ E )")
_UNAVAILABLE = re.compile(r"\|\s*UNAVAILABLE:")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    ) -> None:
        self.repository = Path(repository).resolve()
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.address = address
        self.extra_args = list(extra_args)
        self.gpu = gpu_available() if gpu is None else gpu
        self.exit_timeout_s = exit_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.on_log_line = on_log_line
        self.log: collections.deque[str] = collections.deque(maxlen=5000)
        self.loaded: list[str] = []
        self.skipped: dict[str, str] = {}
        self._process: subprocess.Popen[str] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._reader: threading.Thread | None = None

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
    def _host(self) -> str:
        return "127.0.0.1" if self.address in ("0.0.0.0", "127.0.0.1") else self.address

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(
        self, installation: TritonInstallation, backend_directory: Path, repository: Path
    ) -> list[str]:
        args = [
            str(installation.binary),
            f"--model-repository={repository}",
            f"--backend-directory={backend_directory}",
            f"--grpc-port={self.grpc_port}",
            f"--http-port={self.http_port}",
            f"--metrics-port={self.metrics_port}",
            f"--grpc-address={self.address}",
            f"--http-address={self.address}",
            f"--metrics-address={self.address}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
        ]
        given = {arg.split("=", 1)[0] for arg in self.extra_args}
        return [a for a in args if a.split("=", 1)[0] not in given] + self.extra_args

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> TritonServer:
        installation = TritonInstallation.locate()
        models = read_repository(self.repository)
        self.loaded, self.skipped = plan_view(models, gpu=self.gpu)
        if not self.loaded:
            raise ServerStartError(
                f"nothing in {self.repository} can load here: "
                + "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
            )
        self._workdir = tempfile.TemporaryDirectory(prefix="tdeploy-triton-")
        work = Path(self._workdir.name)
        backends = prepare_backend_directory(work / "backends", installation)
        repository = (
            make_view(self.repository, self.loaded, work / "repository")
            if self.skipped
            else self.repository
        )
        self._process = subprocess.Popen(
            self.command(installation, backends, repository),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=installation.environment(),
            start_new_session=True,  # Ctrl-C reaches us; we forward SIGTERM for a graceful stop
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip("\n")
            self.log.append(line)
            if self.on_log_line is not None:
                self.on_log_line(line)

    def error_lines(self) -> list[str]:
        lines = list(self.log)
        return [ln for ln in lines if _ERROR_LINE.match(ln) or _UNAVAILABLE.search(ln)]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                if self._reader is not None:
                    self._reader.join(timeout=5)
                raise ServerStartError(
                    f"tritonserver exited with code {self._process.returncode} while starting "
                    f"on {self.repository}",
                    self.error_lines() or list(self.log)[-20:],
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        raise ServerStartError(
            f"tritonserver did not become ready within {self.startup_timeout_s:.0f} s",
            self.error_lines() or list(self.log)[-20:],
        )

    def stop(self, timeout_s: float | None = None) -> int | None:
        """Graceful stop: SIGTERM, wait for in-flight requests, then SIGKILL as a last resort."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=timeout_s or self.exit_timeout_s + 15)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                self._workdir.cleanup()
            self._workdir = None
        return code

    def wait(self) -> int:
        """Block until the server exits by itself."""
        assert self._process is not None
        return self._process.wait()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
