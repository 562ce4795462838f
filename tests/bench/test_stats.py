"""Per-stage times and formed batch sizes from two statistics snapshots."""

from __future__ import annotations

from triton_deploy.bench.stats import delta


def _snapshot(requests: int, executions: int, ns: int, batches: dict[int, int]) -> dict:
    stage = {"count": str(requests), "ns": str(ns * requests)}
    return {
        "m": {
            "name": "m",
            "inference_count": str(sum(b * n for b, n in batches.items())),
            "execution_count": str(executions),
            "inference_stats": {
                k: stage
                for k in ("success", "queue", "compute_input", "compute_infer", "compute_output")
            },
            "batch_stats": [
                {"batch_size": str(b), "compute_infer": {"count": str(n), "ns": str(1000 * b * n)}}
                for b, n in batches.items()
            ],
        }
    }


def test_delta_between_snapshots() -> None:
    before = _snapshot(10, 10, 2000, {1: 10})
    after = _snapshot(110, 15, 2000, {1: 10, 20: 5})
    stats = delta(before, after, "m")
    assert stats.requests == 100
    assert stats.executions == 5
    assert stats.batch_sizes == {20: 5}
    assert stats.avg_batch == 20
    assert stats.queue_us == 2.0
    assert stats.infer_us_per_execution == 20.0  # 1000 ns per row, 20 rows per execution


def test_a_model_without_traffic_is_all_zeros() -> None:
    stats = delta({}, {}, "m")
    assert stats.requests == 0 and stats.avg_batch == 0 and stats.queue_us == 0
