"""Constant load on the tiny model through the project's client, every answer logged.

Each user writes ``time version Y X`` (or ``time fail message``) per call to its own file
``$TINY_ANSWERS.<pid>.<n>``; the test reads them all. Used by test_rollout_under_load.py.
"""

import itertools
import os
import time

import locust  # noqa: F401  first: gevent monkey-patching before anything else is imported
import numpy as np
from locust import constant_throughput, task

from triton_deploy.loadtests.grpc_user import TritonGrpcUser

_COUNTER = itertools.count()


class TinyUser(TritonGrpcUser):
    wait_time = constant_throughput(20)

    def on_start(self) -> None:
        self.rng = np.random.default_rng(next(_COUNTER))
        self.log = open(f"{os.environ['TINY_ANSWERS']}.{os.getpid()}.{next(_COUNTER)}", "w")  # noqa: SIM115

    def on_stop(self) -> None:
        self.log.close()
        super().on_stop()

    @task
    def infer(self) -> None:
        x = self.rng.uniform(0.0, 1.0, size=(1, 1)).astype(np.float32)
        error: Exception | None = None
        started = time.perf_counter()
        try:
            out = self.client.infer("tiny", X=x)
        except Exception as exc:  # every failure is logged and reported to locust
            error = exc
            line = f"fail {type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            line = f"{float(out['V'][0, 0])} {float(out['Y'][0, 0])!r} {float(x[0, 0])!r}"
        self.environment.events.request.fire(
            request_type="grpc",
            name="tiny",
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            response=None,
            context={},
            exception=error,
        )
        self.log.write(f"{time.time()} {line}\n")
        self.log.flush()
