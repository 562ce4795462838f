"""Observability: Triton's tracing, the inference log built on it, and model monitoring.

    settings = TraceSettings.parse(["file=/tmp/trace/infer.json", "rate=1", "level=TENSORS"])
    server = TritonServer(repository, extra_args=settings.args())     # tdeploy serve --trace ...
    ...
    log = read_inference_log([Path("/tmp/trace")])                    # rows from the trace files
    write_jsonl(log.records, Path("inference_log.jsonl"))
    report = monitor(log=log, golden=load_golden_cases(repository))   # tdeploy monitor
    print(report.passed)

Only numpy, pydantic and prometheus_client are needed to read logs and judge them; the PNG needs
matplotlib and Parquet needs pyarrow (both in the ``monitor`` extra).
"""

from triton_deploy.observability._drift import (
    Buckets,
    FeatureDrift,
    TensorDrift,
    buckets,
    ks_statistic,
    psi,
)
from triton_deploy.observability._inference_log import (
    CHART_TRACE_FILE,
    InferenceLog,
    InferenceRecord,
    read_inference_log,
    read_rows,
    write_jsonl,
    write_parquet,
)
from triton_deploy.observability._metrics import (
    MetricsWindow,
    ModelCounters,
    Sample,
    exposed_samples,
    parse_metrics,
    scrape,
    window,
)
from triton_deploy.observability._monitor import (
    Check,
    ModelReport,
    MonitorReport,
    Thresholds,
    monitor,
)
from triton_deploy.observability._trace_file import (
    RawTrace,
    TraceTensor,
    find_trace_files,
    parse_trace_text,
    read_trace_files,
)
from triton_deploy.observability._trace_settings import DEFAULT_LOG_FREQUENCY, TraceSettings

__all__ = [
    "CHART_TRACE_FILE",
    "DEFAULT_LOG_FREQUENCY",
    "Buckets",
    "Check",
    "FeatureDrift",
    "InferenceLog",
    "InferenceRecord",
    "MetricsWindow",
    "ModelCounters",
    "ModelReport",
    "MonitorReport",
    "RawTrace",
    "Sample",
    "TensorDrift",
    "Thresholds",
    "TraceSettings",
    "TraceTensor",
    "buckets",
    "exposed_samples",
    "find_trace_files",
    "ks_statistic",
    "monitor",
    "parse_metrics",
    "parse_trace_text",
    "psi",
    "read_inference_log",
    "read_rows",
    "read_trace_files",
    "scrape",
    "window",
    "write_jsonl",
    "write_parquet",
]
