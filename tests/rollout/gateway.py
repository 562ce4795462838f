"""TEST STAND-IN for a Gateway API implementation (Envoy Gateway, Istio, Cilium, ...) serving the
release's GRPCRoute. No gateway can run here; this one is made of real parts:

- ``HAProxy`` in HTTP/2 mode (``mode http``, ``proto h2`` on its frontend and on each server):
  it balances each request (each HTTP/2 stream), not each connection, as a gateway does, so the
  weights hold for long-lived gRPC channels. One backend with two server slots per color
  (``SLOTS``): a weight change is made on the idle pair, then the old pair goes to weight 0.
  HAProxy's roundrobin, given a new weight on a server already in use, first makes up for the
  requests that server "missed" at its old weight (measured: from 10/90 to 50/50, 222 requests
  in a row to green, a step measured at 55-58 % instead of 50 %); a server that comes up from
  weight 0 starts level with the others, so each weight holds from the change on, as in a
  gateway that rebuilds its weighted choice on each route update. An adapter thread reads the
  GRPCRoute that the chart rendered and the stand-in helm applied to the emulated API server,
  maps each backendRef's Service to its color (the Service's selector) and to that color's
  ready tritonserver (the stand-in kubelet's), sets the servers' addresses and weights through
  HAProxy's admin socket, then writes the route's status (Accepted and ResolvedRefs for the
  generation it applied), as a gateway controller does.
- HAProxy cannot mirror gRPC requests. The route's RequestMirror filter is implemented by
  ``MirrorProxy``, a small grpcio server in front of HAProxy (STAND-IN for the gateway's
  RequestMirror): each unary call goes through HAProxy and its answer back to the caller; when
  the route has a mirror, a copy of the call goes, in the background, to the mirror's color and
  its answer is thrown away. Clients that must see the mirror call ``MirrorProxy.url``; the others
  call HAProxy (``GatewayStandIn.url``) directly.

``applied`` lists every change the adapter made: (when it began applying it, weights by color,
mirror color or None).
"""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from harness import BASE_VALUES, NAMESPACE, Emulator, Kubelet, services_by_name

from triton_deploy.runtime.server import free_port

GRPCROUTE_API = "gateway.networking.k8s.io/v1"
SLOTS = ("a", "b")  # two server slots per color (module docstring)
CONTROLLER = "tdeploy.test/gateway-standin"
COLORS = ("blue", "green")
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


class MirrorProxy:
    """A grpcio server: every unary call to the upstream, a copy to the mirror (see above)."""

    def __init__(self, upstream: str) -> None:
        self.port = free_port()
        self._upstream = grpc.insecure_channel(upstream, options=_CHANNEL_OPTIONS)
        self._mirror: grpc.Channel | None = None
        self._mirror_to: str | None = None
        self._percent: int | None = None
        self._lock = threading.Lock()
        self._copies = ThreadPoolExecutor(8, thread_name_prefix="mirror-copy")
        self.mirrored = 0  # copies sent
        self.mirror_failures = 0  # copies the mirror answered with an error (thrown away)
        self.mirror_dropped = 0  # copies in flight when the mirror was turned off
        self.failures: list[str] = []
        self.inferred_at: list[float] = []  # when the mirror answered each ModelInfer copy
        self.server = grpc.server(
            ThreadPoolExecutor(32, thread_name_prefix="mirror-proxy"), options=_CHANNEL_OPTIONS
        )
        self.server.add_generic_rpc_handlers([_PassThrough(self)])
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_mirror(self, address: str | None, percent: int | None) -> None:
        with self._lock:
            if address != self._mirror_to:
                old, self._mirror = self._mirror, None
                if address is not None:
                    self._mirror = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
                if old is not None:
                    old.close()
            self._mirror_to, self._percent = address, percent

    def call(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = [
            (k, v)
            for k, v in context.invocation_metadata()
            if not k.startswith(("grpc-", ":")) and k != "user-agent"
        ]
        with self._lock:
            mirror, percent = self._mirror, self._percent
        if mirror is not None and (percent is None or random.random() * 100 < percent):
            self._copies.submit(self._copy, mirror, method, request, metadata)
        remaining = context.time_remaining()
        try:
            answer: bytes = self._upstream.unary_unary(method)(
                request, timeout=remaining if remaining else None, metadata=metadata
            )
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")  # type: ignore[attr-defined]
        return answer

    def _copy(
        self, channel: grpc.Channel, method: str, request: bytes, metadata: list[Any]
    ) -> None:
        self.mirrored += 1
        try:
            channel.unary_unary(method)(request, timeout=10, metadata=metadata)
        except (grpc.RpcError, ValueError) as exc:  # ValueError: the channel was closed
            with self._lock:
                turned_off = channel is not self._mirror
            if turned_off:  # the mirror went off mid-copy: a gateway drops such copies too
                self.mirror_dropped += 1
            else:
                self.mirror_failures += 1
                self.failures.append(repr(exc)[:300])
        else:
            if method.endswith("/ModelInfer"):
                self.inferred_at.append(time.time())

    def stop(self) -> None:
        self.server.stop(grace=1).wait(5)
        self._copies.shutdown(wait=False, cancel_futures=True)
        self.set_mirror(None, None)
        self._upstream.close()


class _PassThrough(grpc.GenericRpcHandler):
    """Any unary method, raw bytes in and out."""

    def __init__(self, proxy: MirrorProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: self.proxy.call(method, request, context)
        )


class GatewayStandIn:
    """HAProxy (HTTP/2, per-request weights) following the GRPCRoute ``route``; MirrorProxy in
    front for the RequestMirror filter (see the module docstring)."""

    def __init__(self, workdir: Path, emulator: Emulator, kubelet: Kubelet, route: str) -> None:
        self.kubelet = kubelet
        self.cluster = emulator.cluster()
        self.route = route
        self.port = free_port()
        self.socket_path = workdir / "gateway.sock"
        lines = [
            "global",
            f"  stats socket {self.socket_path} mode 600 level admin",
            "  log stdout format raw local0",
            "defaults",
            "  log global",
            "  option httplog",
            "  mode http",
            "  timeout connect 2s",
            "  timeout client 120s",
            "  timeout server 60s",
            # A tritonserver closes its connections after --grpc-max-connection-age (GOAWAY);
            # a request HAProxy sent on a connection the server was closing is sent again, as a
            # gateway does (it never reached the model).
            "  retries 3",
            "  retry-on conn-failure empty-response",
            "frontend gateway",
            f"  bind 127.0.0.1:{self.port} proto h2",
            "  default_backend route",
            "backend route",
            "  balance roundrobin",
        ]
        lines += [
            f"  server {c}_{slot} 127.0.0.1:1 proto h2 weight 0 disabled"
            for c in COLORS
            for slot in SLOTS
        ]
        config = workdir / "gateway.cfg"
        config.write_text("\n".join(lines) + "\n")
        subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True)
        #: HAProxy's request log (one line per request, with its termination state).
        self.log = workdir / "gateway.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not self.socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.mirror = MirrorProxy(self.url)
        self.state: dict[str, Any] = {}
        self._slot = SLOTS[0]  # the pair that carries the current weights
        self._addresses: dict[tuple[str, str], int] = {}  # (color, slot): the port it points at
        self.applied: list[tuple[float, dict[str, int], str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gateway-standin", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            return sock.recv(65536).decode()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._reconcile()
            except Exception as exc:  # recorded; a test asserting on it fails
                self.errors.append(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _color(services: dict[str, Any], service_name: str) -> str | None:
        service = services.get(service_name)
        color = ((service or {}).get("spec") or {}).get("selector", {}).get("color")
        return str(color) if color in COLORS else None

    def _reconcile(self) -> None:
        route = self.cluster.get(GRPCROUTE_API, "grpcroutes", self.route)
        if route is None:
            return
        (rule,) = route["spec"]["rules"]
        services = services_by_name(self.cluster)
        weights = dict.fromkeys(COLORS, 0)
        for ref in rule.get("backendRefs") or []:
            color = self._color(services, ref["name"])
            if color is not None:
                weights[color] += int(ref.get("weight", 1))
        mirror: tuple[str, int | None] | None = None
        for item in rule.get("filters") or []:
            if item.get("type") == "RequestMirror":
                color = self._color(services, item["requestMirror"]["backendRef"]["name"])
                if color is not None:
                    mirror = (color, item["requestMirror"].get("percent"))
        servers = {}
        for color in COLORS:
            server = self.kubelet.ready_server(color)
            servers[color] = server.grpc_port if server is not None else None
        wanted = {"weights": weights, "servers": servers, "mirror": mirror}
        if wanted != self.state:
            began = time.time()  # no request can reach a new weight before this
            if servers != self.state.get("servers") or weights != self.state.get("weights"):
                self._switch_slots(servers, weights)
            mirror_port = servers.get(mirror[0]) if mirror else None
            self.mirror.set_mirror(
                f"127.0.0.1:{mirror_port}" if mirror and mirror_port else None,
                mirror[1] if mirror else None,
            )
            if wanted["weights"] != self.state.get("weights") or mirror != self.state.get("mirror"):
                self.applied.append((began, dict(weights), mirror[0] if mirror else None))
            self.state = wanted
        self._write_status(route, ready=all(servers[c] for c in COLORS if weights[c] > 0))

    def _switch_slots(self, servers: dict[str, int | None], weights: dict[str, int]) -> None:
        """The new addresses and weights on the idle pair of slots, then the old pair to weight
        0 (its requests in flight finish on their connections; see the module docstring)."""
        old = self._slot
        new = SLOTS[1 - SLOTS.index(old)]
        for color in COLORS:
            port = servers[color]
            if port is None or weights[color] == 0:
                self.admin(f"disable server route/{color}_{new}")
                continue
            if self._addresses.get((color, new)) != port:  # re-addressing drops connections
                self.admin(f"set server route/{color}_{new} addr 127.0.0.1 port {port}")
                self._addresses[color, new] = port
            self.admin(f"set weight route/{color}_{new} {weights[color]}")
            self.admin(f"enable server route/{color}_{new}")
        for color in COLORS:
            self.admin(f"set weight route/{color}_{old} 0")
        self._slot = new

    def _write_status(self, route: dict[str, Any], *, ready: bool) -> None:
        generation = int(route["metadata"].get("generation") or 1)
        parents = (route.get("status") or {}).get("parents") or []
        done = parents and all(
            c.get("observedGeneration") == generation and c.get("status") == "True"
            for p in parents
            for c in p.get("conditions", [])
        )
        if done or not ready:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        conditions = [
            {
                "type": kind,
                "status": "True",
                "reason": kind,
                "message": "applied by the test gateway stand-in (HAProxy)",
                "observedGeneration": generation,
                "lastTransitionTime": stamp,
            }
            for kind in ("Accepted", "ResolvedRefs")
        ]
        status = {
            "parents": [
                {"parentRef": ref, "controllerName": CONTROLLER, "conditions": conditions}
                for ref in route["spec"]["parentRefs"]
            ]
        }
        self.cluster.patch(GRPCROUTE_API, "grpcroutes", f"{self.route}/status", {"status": status})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.mirror.stop()
        self.process.terminate()
        self.process.wait(timeout=10)


def gateway_values(parent: str = "inference-gateway") -> dict[str, Any]:
    """Values of a test release with the chart's GRPCRoute.

    The servers run without a max connection age: behind a gateway, the gateway's own
    connections to the pods carry the traffic and its weights move each request, so nothing
    waits for connections to age (the rollouts pass --scale-down-delay, as the driver asks when
    clients do not need the age). HAProxy 2.6 in HTTP/2 mode also mishandles a server that
    ages its connections out now and then: one call in some ten thousand ended without gRPC
    trailers (HAProxy logged "SD", a server abort mid-response) where a TCP proxy would pass
    the reset on as UNAVAILABLE, which the client retries."""
    grpc = {"maxConnectionAgeMs": 0, "maxConnectionAgeGraceMs": 0}
    return {
        "gateway": {"enabled": True, "parentRefs": [{"name": parent, "namespace": NAMESPACE}]},
        "triton": {**BASE_VALUES["triton"], "grpc": grpc},
    }
