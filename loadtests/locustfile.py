"""Load test of Triton's gRPC endpoint with the workloads of a task mix.

    locust -f loadtests/locustfile.py --headless -u 16 -r 8 -t 30s --host 127.0.0.1:8001 \\
        --target-env local --csv reports/loadtest/local --csv-full-history

Our options (--target-env, --slo-file, --mix-file, --load-shape, --ramp-steps,
--spike-baseline, --grpc-tls/-ca/-cert/-key, --grpc-header, --grpc-token, --grpc-timeout, each
also an environment variable) are in ``triton_deploy.loadtests.plugin``; what the users send is
the task mix's workloads (``triton_deploy.loadtests.taskmix``). Distributed: the same file with
--master / --worker.
"""

import locust  # noqa: F401  first: gevent monkey-patching before anything else is imported

from triton_deploy.loadtests.plugin import LoadShape
from triton_deploy.loadtests.users import WorkloadUser

__all__ = ["LoadShape", "WorkloadUser"]
