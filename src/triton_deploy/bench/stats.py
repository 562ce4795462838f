"""Where the server's time goes, from Triton's own statistics API (per model, as deltas).

Per request: queue, compute_input, compute_infer, compute_output (Triton charges every request
of a batch the batch's compute times). Per execution: the batch sizes the dynamic batcher
formed (a histogram) and the compute time of one execution. These are what explain a missed
goal: a long queue means waiting for a batch or for a busy instance; compute_infer per
execution against the in-process time of the same batch shows the backend's own overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageTimes", "delta", "snapshot"]


@dataclass
class StageTimes:
    """Statistics of one model between two snapshots."""

    model: str
    requests: int = 0
    inferences: int = 0  # samples (rows) inferred
    executions: int = 0
    queue_us: float = 0.0  # per request
    compute_input_us: float = 0.0
    compute_infer_us: float = 0.0
    compute_output_us: float = 0.0
    infer_us_per_execution: float = 0.0
    batch_sizes: dict[int, int] = field(default_factory=dict)  # batch size -> executions

    @property
    def avg_batch(self) -> float:
        return self.inferences / self.executions if self.executions else 0.0

    def summary(self) -> str:
        text = (
            f"{self.model}: queue {self.queue_us:.0f} us, compute input {self.compute_input_us:.0f}"
            f" / infer {self.compute_infer_us:.0f} / output {self.compute_output_us:.0f} us per "
            "request"
        )
        if self.executions:
            text += (
                f"; {self.executions} executions, avg batch {self.avg_batch:.1f}, "
                f"{self.infer_us_per_execution:.0f} us compute_infer per execution"
            )
        return text


def _int(value: Any) -> int:
    return int(value or 0)


def snapshot(url: str, timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every model's statistics now (JSON form of the gRPC ModelStatistics reply), by name."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        reply = client.get_inference_statistics("", as_json=True, client_timeout=timeout_s)
    finally:
        client.close()
    return {stats["name"]: stats for stats in reply.get("model_stats", [])}


def _stage(stats: dict[str, Any], key: str) -> tuple[int, int]:
    entry = stats.get("inference_stats", {}).get(key, {})
    return _int(entry.get("count")), _int(entry.get("ns"))


def delta(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], model: str
) -> StageTimes:
    """What ``model`` did between two snapshots."""
    new = after.get(model, {})
    old = before.get(model, {})
    out = StageTimes(model)
    requests = _stage(new, "success")[0] - _stage(old, "success")[0]
    out.requests = requests
    out.inferences = _int(new.get("inference_count")) - _int(old.get("inference_count"))
    out.executions = _int(new.get("execution_count")) - _int(old.get("execution_count"))
    for key in ("queue", "compute_input", "compute_infer", "compute_output"):
        count = _stage(new, key)[0] - _stage(old, key)[0]
        ns = _stage(new, key)[1] - _stage(old, key)[1]
        setattr(out, f"{key}_us", ns / count / 1e3 if count else 0.0)
    old_batches = {_int(b["batch_size"]): b for b in old.get("batch_stats", [])}
    infer_ns = 0
    for entry in new.get("batch_stats", []):
        size = _int(entry["batch_size"])
        previous = old_batches.get(size, {})
        count = _int(entry.get("compute_infer", {}).get("count")) - _int(
            previous.get("compute_infer", {}).get("count")
        )
        infer_ns += _int(entry.get("compute_infer", {}).get("ns")) - _int(
            previous.get("compute_infer", {}).get("ns")
        )
        if count > 0:
            out.batch_sizes[size] = count
    out.infer_us_per_execution = infer_ns / out.executions / 1e3 if out.executions else 0.0
    return out
