"""Fixtures for the rollout driver's tests (the cluster parts live in harness.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway import GatewayStandIn, gateway_values
from harness import FULLNAME, RolloutCluster, make_cluster, tiny_repository, write_golden


@pytest.fixture
def repositories(tmp_path: Path) -> dict[str, Path]:
    """Model repository URIs the stand-in kubelet can "read", mapped to local folders."""
    return {
        "s3://models/v1": tiny_repository(tmp_path / "v1" / "model_repository", 1),
        "s3://models/v2": tiny_repository(tmp_path / "v2" / "model_repository", 2),
    }


@pytest.fixture
def golden_v2(repositories: dict[str, Path]) -> Path:
    """The local build of version 2, with its golden cases (for --golden)."""
    repository = repositories["s3://models/v2"]
    write_golden(repository, 2)
    return repository


@pytest.fixture
def cluster(tmp_path: Path, repositories: dict[str, Path]) -> Iterator[RolloutCluster]:
    """The emulated cluster with the release installed: blue live, serving version 1."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy missing: run `bash .ci/system-deps`")
    with make_cluster(tmp_path / "cluster", repositories) as test_cluster:
        test_cluster.install()
        yield test_cluster


@pytest.fixture
def gateway_cluster(
    tmp_path: Path, repositories: dict[str, Path]
) -> Iterator[tuple[RolloutCluster, GatewayStandIn]]:
    """The emulated cluster with the release installed with its GRPCRoute (gateway.enabled),
    blue live serving version 1, and the stand-in gateway (gateway.py) serving the route."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy missing: run `bash .ci/system-deps`")
    workdir = tmp_path / "cluster"
    with make_cluster(workdir, repositories) as test_cluster:
        test_cluster.install(gateway_values())
        gateway = GatewayStandIn(workdir, test_cluster.emulator, test_cluster.kubelet, FULLNAME)
        try:
            test_cluster.wait_for(
                lambda: bool(gateway.applied) and gateway.applied[-1][1]["blue"] == 100,
                60,
                "the gateway routing the GRPCRoute to blue",
            )
            yield test_cluster, gateway
        finally:
            gateway.stop()
