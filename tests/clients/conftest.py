"""Fixtures for the client tests (helpers live in clienttools.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clienttools import TcpProxy

from triton_deploy.runtime.server import TritonServer


def _grpc_address(server: TritonServer) -> tuple[str, int]:
    return ("127.0.0.1", server.grpc_port)


@pytest.fixture
def proxy(triton_server: TritonServer) -> Iterator[TcpProxy]:
    """Two colors, both routed to the session's server: which one a connection took shows
    whether the client reconnected after a switch."""
    address = _grpc_address(triton_server)
    tcp_proxy = TcpProxy({"blue": address, "green": address}, active="blue")
    yield tcp_proxy
    tcp_proxy.close()


@pytest.fixture
def grpc_url(triton_server: TritonServer) -> str:
    return triton_server.grpc_url
