"""Load shedding in front of Triton's gRPC port: HAProxy in HTTP/2 mode with a bounded queue.

Why not Triton's own queue policy: in 2.51 any non-empty ``default_queue_policy`` turns off
the dynamic batcher's prefetching (triton-inference-server/core PR #237), and a request turned
away from a full queue does not wake the batcher: it sleeps up to 500 ms while its model
instance is idle. Measured here at 1.5x capacity with ``max_queue_size`` on every model:
accepted requests' p99 ~550 ms (vs ~20 ms at normal load) and rejections answered after
~700 ms. Without a policy there is no bound at all: memory and latency grow until clients give
up, and the backlog is still executed afterwards.

So the bound sits in front of Triton instead, where a request costs nothing yet:

- at most ``max_inflight`` requests are inside Triton (HAProxy's per-server ``maxconn``
  counts HTTP/2 streams), so Triton's queues stay short and its batcher keeps prefetching;
- up to ``max_queued`` more wait in HAProxy's queue, in arrival order;
- beyond that a request is answered at once with gRPC ``UNAVAILABLE`` "server overloaded"
  (a trailers-only gRPC response), which clients retry elsewhere with backoff;
- a request whose client gave up (deadline, cancel: the HTTP/2 stream is reset) leaves the
  queue without reaching Triton; ``timeout_queue_s`` bounds the wait in any case;
- ``drain()`` (soft stop, SIGUSR1) closes the listener and sends GOAWAY, while everything
  already queued or in flight still goes through: the first step of a graceful stop.

    shedder = Shedder(("127.0.0.1", 8001), upstream_port=40123, max_inflight=64).start()
    ...
    shedder.stop()

``render_config`` is the whole configuration; the Helm chart's sidecar uses the same lines.
With ``access_log=`` HAProxy writes one line per request (``read_access_log``): its own
timings, taken where the request meets the server, free of any client's scheduling delays.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from triton_deploy.errors import RuntimeEnvironmentError, ServerStartError
from triton_deploy.runtime.lifecycle import spawn

__all__ = [
    "OVERLOADED_MESSAGE",
    "AccessRecord",
    "Shedder",
    "haproxy_binary",
    "read_access_log",
    "render_config",
    "retarget",
    "shedder_bounds",
    "sidecar_script",
    "with_access_log",
]

#: grpc-message of the shedder's rejections (clients map it to ServerOverloaded).
OVERLOADED_MESSAGE = "server overloaded: queue full, retry with backoff"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )
    if found is None:
        raise RuntimeEnvironmentError(
            "overload protection needs HAProxy: apt-get install haproxy (or brew install "
            "haproxy); or serve without it: --max-inflight 0"
        )
    return found


_ACCESS_TAG = "tdeploy-access"


@dataclass(frozen=True)
class AccessRecord:
    """One request as HAProxy saw it (times in ms, HAProxy's resolution)."""

    status: int  # HTTP status (200 for every gRPC answer, the shedder's rejections included)
    queued_ms: int  # wait in the shedder's queue (-1: never queued)
    total_ms: int  # from the whole request received to the last byte of the answer
    shed: bool  # answered by the shedder itself (no server): rejected, or timed out in queue


def read_access_log(path: Path, start: int = 0, end: int | None = None) -> list[AccessRecord]:
    """The access lines of ``path`` between byte offsets ``start`` and ``end``."""
    with path.open("rb") as f:
        f.seek(start)
        data = f.read() if end is None else f.read(max(end - start, 0))
    records = []
    for line in data.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] == _ACCESS_TAG:
            try:
                status, queued, total = int(parts[1]), int(parts[2]), int(parts[3])
            except ValueError:
                continue
            if status <= 0:  # a connection that sent no request (a port probe)
                continue
            records.append(AccessRecord(status, queued, total, parts[4] == "<NOSRV>"))
    return records


def render_config(
    *,
    listen: tuple[str, int],
    upstream: tuple[str, int],
    max_inflight: int,
    max_queued: int,
    timeout_queue_s: float = 5.0,
    access_log: bool = False,
    metrics: tuple[str, int] | None = None,
    max_connection_age_ms: int = 0,
    max_connection_age_grace_ms: int = 0,
) -> str:
    """haproxy.cfg for the shedder (see the module docstring).

    ``metrics``: a second listener with HAProxy's Prometheus exporter (``/metrics``: requests,
    queue, shed answers) and a readiness endpoint (``/ready``: 503 while Triton's port does
    not accept connections, and gone once HAProxy stops accepting). ``max_connection_age_ms``:
    the settings of a shedder that is reloaded every max connection age (the chart's sidecar,
    ``sidecar_script``): its GOAWAYs are spread over a tenth of the age (gRPC's jitter) and
    an old process ends at most ``max_connection_age_grace_ms`` + the queue timeout later.

    The Helm chart renders the same text (templates/_shedder.tpl); tests/charts compares the
    two for every combination of these settings.
    """
    _host, _port = listen
    log_global, log_frontend, age, check, stats = "", "", "", "", ""
    if access_log:  # one line a request on stdout: status, queue wait, total time, server
        log_global = "\n    log stdout format raw local0 info"
        log_frontend = f'\n    log global\n    option dontlognull\n    log-format "{_ACCESS_TAG} %ST %Tw %Ta %s"'
    if max_connection_age_ms > 0:
        spread = max(max_connection_age_ms // 10, 1)
        hard_stop = max_connection_age_grace_ms + int(timeout_queue_s * 1000)
        age = (
            "\n    # reloaded every max connection age: the old process says GOAWAY to its clients"
            f"\n    # (spread over {spread} ms) and ends once their calls are done, at most {hard_stop} ms"
            f"\n    close-spread-time {spread}ms\n    hard-stop-after {hard_stop}ms"
        )
    if metrics is not None:
        check = " check inter 1s fall 2 rise 1"
        stats = f"""
frontend stats
    bind {_address(metrics)}
    # readiness: 503 while Triton's gRPC port refuses connections
    monitor-uri /ready
    monitor fail if {{ nbsrv(triton) lt 1 }}
    # Prometheus: requests (haproxy_frontend_http_requests_total), shed answers
    # (haproxy_frontend_intercepted_requests_total), queue (haproxy_backend_current_queue)
    http-request use-service prometheus-exporter if {{ path /metrics }}
"""
    connections = max(4096, 4 * (max_inflight + max_queued))
    return f"""# tdeploy load shedder: at most {max_inflight} requests inside Triton, {max_queued} queued here
global
    maxconn {connections}{log_global}
    # a gRPC client multiplexes its calls on one connection: let it
    tune.h2.max-concurrent-streams 4096{age}

defaults
    mode http
    timeout connect 5s
    # gRPC connections are long-lived and may stay idle between calls
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 1h
    timeout queue {int(timeout_queue_s * 1000)}ms

frontend grpc
    bind {_address(listen)} proto h2{log_frontend}
    # read the whole (small) request before answering it: an answer sent while the client is
    # still uploading would be followed by a stream reset, which gRPC reports as CANCELLED
    option http-buffer-request
    # the queue is full: answer now (gRPC UNAVAILABLE) instead of letting the request wait;
    # counted in haproxy_frontend_intercepted_requests_total{{proxy="grpc"}}
    http-request return status 200 hdr grpc-status 14 hdr grpc-message "{OVERLOADED_MESSAGE}" if {{ queue(triton) ge {max_queued} }}
    default_backend triton

backend triton
    server triton {upstream[0]}:{upstream[1]} proto h2 maxconn {max_inflight}{check}
{stats}"""


def _address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_BIND = re.compile(r"^(    bind )(\S+)(.*)$", re.MULTILINE)
_SERVER = re.compile(r"^(    server triton )(\S+)( .*)$", re.MULTILINE)


def retarget(
    config: str,
    *,
    listen: tuple[str, int],
    upstream: tuple[str, int],
    metrics: tuple[str, int] | None = None,
) -> str:
    """``config`` (from ``render_config``, e.g. as the Helm chart rendered it) with other
    addresses: a pod's fixed ports mapped to free ports on this machine, nothing else changed.
    Raises ``ValueError`` when the config does not have the listeners it should."""
    binds = _BIND.findall(config)
    if len(binds) != (1 if metrics is None else 2) or len(_SERVER.findall(config)) != 1:
        raise ValueError(
            f"not a shedder config with {'two listeners' if metrics else 'one listener'} and "
            "one server (render_config's output)"
        )
    addresses = iter([listen, *([metrics] if metrics else [])])
    config = _BIND.sub(lambda m: m.group(1) + _address(next(addresses)) + m.group(3), config)
    return _SERVER.sub(lambda m: f"{m.group(1)}{upstream[0]}:{upstream[1]}{m.group(3)}", config)


def with_access_log(config: str) -> str:
    """``config`` (``render_config`` output without an access log, e.g. the chart's) with the
    access-log lines ``render_config(access_log=True)`` writes, and nothing else changed: the
    overload benchmark's edge timings from the chart's own configuration."""
    if _ACCESS_TAG in config:
        return config
    log_global = "\n    log stdout format raw local0 info"
    log_frontend = (
        f'\n    log global\n    option dontlognull\n    log-format "{_ACCESS_TAG} %ST %Tw %Ta %s"'
    )
    config, globals_found = re.subn(
        r"^(    maxconn \d+)$", r"\1" + log_global, config, count=1, flags=re.M
    )
    config, binds_found = re.subn(
        r"^(frontend grpc\n    bind \S+ proto h2)$",
        lambda m: m.group(1) + log_frontend,
        config,
        count=1,
        flags=re.M,
    )
    if not (globals_found and binds_found):
        raise ValueError("not a shedder config (render_config's output)")
    return config


def shedder_bounds(config: str) -> tuple[int, int]:
    """(max in flight, max queued) of a shedder config."""
    inflight = re.search(r"^    server triton \S+ proto h2 maxconn (\d+)", config, re.M)
    queued = re.search(r"queue\(triton\) ge (\d+)", config)
    if inflight is None or queued is None:
        raise ValueError("not a shedder config (render_config's output)")
    return int(inflight.group(1)), int(queued.group(1))


def sidecar_script(config_path: str, max_connection_age_ms: int) -> str:
    """The sidecar's command (``sh -c``): HAProxy in master-worker mode, reloaded every max
    connection age. HAProxy has no max connection age of its own (Triton's applies to the
    shedder's connection, not to the clients'); a reload is its graceful way to send GOAWAY
    to every client while each call in flight completes, so clients reconnect through the
    Service (after a blue/green switch: to the new color). TERM (or USR1) from the kubelet
    becomes HAProxy's soft stop; an HAProxy that exits by itself ends the container."""
    seconds, ms = divmod(max_connection_age_ms, 1000)
    period = f"{seconds}.{ms:03d}".rstrip("0") if ms else str(seconds)
    reload = (
        f'  sleep {period} & wait $!\n  kill -USR2 "$master" 2>/dev/null\n'
        if max_connection_age_ms > 0
        else "  sleep 3600 & wait $!\n"
    )
    return (
        f"haproxy -W -db -f {config_path} &\n"
        "master=$!\n"
        'trap \'kill -USR1 "$master" 2>/dev/null; wait "$master"; exit 0\' TERM INT USR1\n'
        'while kill -0 "$master" 2>/dev/null; do\n'
        f"{reload}"
        "done\n"
        'wait "$master"\n'
    )


class Shedder:
    """HAProxy running ``render_config`` (see the module docstring).

    ``config``: run this text instead (e.g. the Helm chart's rendered sidecar config, through
    ``retarget``); ``listen`` is still where ``start()`` waits for it to accept connections.
    """

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        upstream_port: int,
        max_inflight: int,
        max_queued: int | None = None,
        timeout_queue_s: float = 5.0,
        access_log: Path | None = None,
        config: str | None = None,
    ) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, got {max_inflight}")
        self.config = config or render_config(
            listen=listen,
            upstream=("127.0.0.1", upstream_port),
            max_inflight=max_inflight,
            max_queued=max_queued if max_queued is not None else max_inflight,
            timeout_queue_s=timeout_queue_s,
            access_log=access_log is not None,
        )
        self.access_log = access_log
        self.listen = listen
        self.exit_code: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None

    def start(self, timeout_s: float = 10.0) -> Shedder:
        binary = haproxy_binary()
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="tdeploy-shedder-")
        path = Path(self._workdir.name) / "haproxy.cfg"
        path.write_text(self.config)
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(path)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise ServerStartError(f"HAProxy rejected the shedder config: {check.stderr.strip()}")
        log = self._log = self.access_log or Path(self._workdir.name) / "haproxy.log"
        offset = log.stat().st_size if log.exists() else 0
        self.exit_code = None
        with log.open("a") as sink:
            self._process = spawn(
                [binary, "-db", "-f", str(path)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.exit_code = self._process.returncode
                with log.open("rb") as f:
                    f.seek(offset)
                    error = f.read().decode(errors="replace")
                self._process = None
                raise ServerStartError(
                    f"HAProxy (load shedder) exited while starting on {self.listen}: "
                    + error.strip()[-500:]
                )
            try:
                socket.create_connection(self.listen, timeout=1).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise ServerStartError(f"HAProxy (load shedder) did not listen on {self.listen}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        """False once HAProxy has exited (``exit_code`` then says how) or was never started."""
        process = self._process
        if process is None:
            return False
        code = process.poll()
        if code is None:
            return True
        self.exit_code = code
        return False

    def restart(self, timeout_s: float = 5.0) -> Shedder:
        """Start HAProxy again with the same config (after it died); ``ServerStartError`` when
        it cannot (its port taken meanwhile, HAProxy gone)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()
        return self.start(timeout_s)

    def drain(self, timeout_s: float) -> bool:
        """Soft stop: no new connections, GOAWAY on the open ones, queued and in-flight
        requests still go through; True once HAProxy has exited by itself."""
        process = self._process
        if process is None or process.poll() is not None:
            return True
        process.send_signal(signal.SIGUSR1)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
