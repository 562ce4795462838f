"""Load tests of Triton with Locust: gRPC users, load shapes, SLO gates and reports.

    tdeploy loadtest                           # local server, 16 users, 30 s, local SLOs
    tdeploy loadtest --host triton.staging:443 --env staging --tls --shape step -t 5m
    locust -f loadtests/locustfile.py --headless -u 16 -r 8 -t 30s --host 127.0.0.1:8001

Modules:

- ``grpc_user``  ``TritonGrpcUser``: abstract User calling models through the project's client
- ``workload``   ``Workload``: what one kind of client sends (a payload plugin named in the
                 task mix), and ``GoldenWorkload``: any model, from its build's golden cases
- ``users``      ``WorkloadUser``: the one User class, running the mix's workloads
- ``plugin``     locust options (each with an environment variable), task mix, load shape,
                 SLO gate (exit code 3 when violated)
- ``locustfile`` a few lines tying these together
- ``objectives`` / ``taskmix``  the per-environment YAML files (``slo/``, ``mix/``), validated
- ``shapes``     constant, step ramp and spike, as plain ``tick(run_time)`` objects
- ``plot``       PNG of throughput and latency percentiles over time
- ``run``        ``run_loadtest``: local server, locust, reports

Importing this package never imports locust (locust monkey-patches the process for gevent):
only ``grpc_user``, ``users``, ``plugin`` and ``locustfile`` do, and they run inside locust.
The example models' workloads live with the examples
(``triton_deploy.build.examples.<family>.payloads``).
"""

from .config import ENVIRONMENTS, LOCUSTFILE, LoadTestConfigError, mix_path, slo_path
from .objectives import (
    EXIT_SLO_VIOLATED,
    Check,
    Measured,
    Objectives,
    SloReport,
    SloSpec,
    evaluate,
    load_slo,
)
from .run import LoadTestResult, run_loadtest
from .shapes import ConstantLoad, Spike, StepRamp, make_shape
from .taskmix import TaskMix, WorkloadMix
from .workload import GoldenWorkload, Workload, WorkloadOptions

__all__ = [
    "ENVIRONMENTS",
    "EXIT_SLO_VIOLATED",
    "LOCUSTFILE",
    "Check",
    "ConstantLoad",
    "GoldenWorkload",
    "LoadTestConfigError",
    "LoadTestResult",
    "Measured",
    "Objectives",
    "SloReport",
    "SloSpec",
    "Spike",
    "StepRamp",
    "TaskMix",
    "Workload",
    "WorkloadMix",
    "WorkloadOptions",
    "evaluate",
    "load_slo",
    "make_shape",
    "mix_path",
    "run_loadtest",
    "slo_path",
]
