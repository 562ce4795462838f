"""Graceful drain that loses no in-flight request, ensembles included.

Triton 2.51's own SIGTERM path stops the scheduler of every model at once
(``StopAllModels``): an ensemble request already running then fails at its next step with
"Server is stopping, scheduler for model has stopped accepting new inference requests".

An explicit *unload* behaves differently: the model leaves the repository (new requests get
NOT_FOUND "... has no available versions", which clients treat as retryable: the model is
unloading) but its scheduler keeps running for the requests that hold it, and every running
ensemble request holds all of its composing models until it completes
(``EnsembleContext`` keeps a handle to each). A model is destroyed, and reported
``UNAVAILABLE``, only once its last request has finished. So, with the server in explicit
model-control mode (``--model-control-mode=explicit --load-model=*``):

1. unload the ensembles: no new ensemble request is accepted;
2. unload the Python models (they may call others through BLS: callers before callees);
3. wait until those are all ``UNAVAILABLE``: no ensemble or BLS request is running any more;
4. unload everything else and wait until it is ``UNAVAILABLE`` too;

then SIGTERM finds nothing loaded and exits at once. ``tdeploy drain`` runs it against any
server in explicit mode (a Kubernetes preStop hook can too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

__all__ = ["DrainReport", "drain"]


@dataclass
class DrainReport:
    """What a drain did: the models unloaded and, if the time ran out, what was still busy."""

    unloaded: list[str] = field(default_factory=list)
    still_loaded: dict[str, str] = field(default_factory=dict)  # model -> state at the deadline
    seconds: float = 0.0
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and not self.still_loaded

    def summary(self) -> str:
        if self.error:
            return f"drain failed after {self.seconds:.1f} s: {self.error}"
        if self.still_loaded:
            busy = ", ".join(f"{m} ({s})" for m, s in sorted(self.still_loaded.items()))
            return f"drain timed out after {self.seconds:.1f} s; still in flight: {busy}"
        return f"drained {len(self.unloaded)} models in {self.seconds:.1f} s"


def _states(client: grpcclient.InferenceServerClient, headers: Mapping[str, str]) -> dict[str, str]:
    index = client.get_model_repository_index(headers=dict(headers), as_json=True)
    return {m["name"]: m.get("state", "") for m in index.get("models", [])}


def drain(
    url: str,
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    poll_s: float = 0.05,
    log: Callable[[str], None] | None = None,
) -> DrainReport:
    """Unload every loaded model, callers first, and wait until each has finished its requests.

    ``headers`` carries the restricted-protocol key if the server restricts model-repository
    calls (``triton-grpc-protocol-<key>: <value>``). Never raises for a server problem: the
    report says what happened, and the caller falls back to SIGTERM.
    """
    headers = dict(headers or {})
    started = time.monotonic()
    deadline = started + timeout_s
    report = DrainReport()
    say = log or (lambda _line: None)
    client = grpcclient.InferenceServerClient(url)
    try:
        loaded = [m for m, s in _states(client, headers).items() if s in ("READY", "LOADING")]
        kinds = {}
        for model in loaded:
            config = client.get_model_config(model, headers=headers, as_json=True)["config"]
            kinds[model] = (
                "ensemble"
                if config.get("platform") == "ensemble"
                else "python"
                if config.get("backend") == "python"
                else "other"
            )
        callers = [m for m in loaded if kinds[m] in ("ensemble", "python")]
        ordered = [m for m in callers if kinds[m] == "ensemble"]
        ordered += [m for m in callers if kinds[m] == "python"]
        for phase in (ordered, [m for m in loaded if kinds[m] == "other"]):
            for model in phase:
                client.unload_model(model, headers=headers)
                report.unloaded.append(model)
            if phase:
                say(f"unloading {', '.join(phase)}; waiting for their in-flight requests")
            while True:
                busy = {
                    m: s
                    for m, s in _states(client, headers).items()
                    if m in phase and s not in ("UNAVAILABLE", "")
                }
                if not busy:
                    break
                if time.monotonic() >= deadline:
                    report.still_loaded = busy
                    report.seconds = time.monotonic() - started
                    return report
                time.sleep(poll_s)
    except InferenceServerException as exc:
        report.error = f"{exc.status() or ''} {exc.message()}".strip()
    finally:
        client.close()
    report.seconds = time.monotonic() - started
    return report
