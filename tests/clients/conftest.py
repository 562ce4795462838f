"""Fixtures for the client tests (helpers live in clienttools.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clienttools import TcpProxy
from tlstools import make_tls_files

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


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Test certificates (see ``clienttools.make_tls_files``)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
