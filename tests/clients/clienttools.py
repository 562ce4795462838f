"""Helpers for the client tests: an L4 (TCP) proxy and synthetic model inputs.

The proxy stands in for a Kubernetes Service: it picks a backend ("color") per *new*
connection and leaves established connections where they are, which is exactly why gRPC
clients must recycle their channels for a blue/green switch to take effect.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from triton_deploy.runtime.server import listening_socket


@dataclass
class ProxyConnection:
    number: int
    color: str
    opened: float
    closed: float | None = None
    bytes_up: int = 0  # client -> server
    sockets: list[socket.socket] = field(default_factory=list)


class TcpProxy:
    """A threaded TCP proxy: ``switch(color)`` routes new connections, ``delay_s`` slows
    responses, ``reset()`` cuts every connection."""

    def __init__(self, routes: dict[str, tuple[str, int]], active: str) -> None:
        self.routes = dict(routes)
        self.active = active
        self.delay_s = 0.0
        self.connections: list[ProxyConnection] = []
        self._lock = threading.Lock()
        self._listener = listening_socket()  # not on a port another worker was handed
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def switch(self, color: str) -> None:
        with self._lock:
            self.active = color

    def bytes_up(self, color: str) -> int:
        with self._lock:
            return sum(c.bytes_up for c in self.connections if c.color == color)

    def opened(self) -> Counter[str]:
        with self._lock:
            return Counter(c.color for c in self.connections)

    def open_now(self) -> list[ProxyConnection]:
        with self._lock:
            return [c for c in self.connections if c.closed is None]

    def reset(self) -> None:
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            for sock in conn.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        self.reset()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                color = self.active
                conn = ProxyConnection(len(self.connections) + 1, color, time.monotonic())
                self.connections.append(conn)
            try:
                upstream = socket.create_connection(self.routes[color], timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                conn.closed = time.monotonic()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sockets = [client, upstream]
            done = threading.Barrier(2, action=functools.partial(self._finish, conn))
            threading.Thread(
                target=self._pump, args=(client, upstream, conn, True, done), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, conn, False, done), daemon=True
            ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        conn: ProxyConnection,
        up: bool,
        done: threading.Barrier,
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up:
                    with self._lock:
                        conn.bytes_up += len(data)
                elif self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(threading.BrokenBarrierError):
                done.wait(timeout=60)

    def _finish(self, conn: ProxyConnection) -> None:
        for sock in conn.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            conn.closed = time.monotonic()


def digit_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8), dtype=np.uint8)


def impressions(n: int, seed: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    devices = ["mobile", "desktop", "tablet"]
    sites = ["news", "sports", "games", "finance"]
    ads = ["travel", "retail", "auto", "food"]
    countries = ["DE", "FR", "US", "JP"]
    return [
        {
            "hour_of_day": int(rng.integers(0, 24)),
            "ad_position": int(rng.integers(1, 6)),
            "user_age": float(rng.integers(18, 80)),
            "bid_floor": float(np.round(rng.uniform(0.01, 2.0), 3)),
            "device_type": devices[int(rng.integers(len(devices)))],
            "site_category": sites[int(rng.integers(len(sites)))],
            "ad_category": ads[int(rng.integers(len(ads)))],
            "country": countries[int(rng.integers(len(countries)))],
            "impression_id": i,  # extra fields are ignored
        }
        for i in range(n)
    ]
