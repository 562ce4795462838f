"""One rollout per release at a time: a ``coordination.k8s.io/v1`` Lease with owner and expiry.

    with RolloutLock(cluster, "triton-triton-deploy-rollout", purpose="rollout blue→green"):
        ...   # the Lease is renewed in the background; lock.ensure_held() before each change

A Lease held by someone else and not expired refuses the lock (``LockHeld`` names the holder,
what it is doing and when the Lease expires). An expired Lease is taken over, and so is one
whose holder was a process of this machine that no longer runs (a killed rollout resumed at
once). Updates carry the Lease's resourceVersion, so two drivers racing for an expired Lease
cannot both win.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import threading
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from ._errors import ClusterError, LockHeld, RolloutError
from ._kube import Cluster
from ._record import now

__all__ = ["RolloutLock", "lease_state"]

_API = "coordination.k8s.io/v1"
_PLURAL = "leases"
_PURPOSE = "triton-deploy/purpose"
_HOST = "triton-deploy/host"
_PID = "triton-deploy/pid"


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def lease_state(lease: dict[str, Any] | None) -> dict[str, Any] | None:
    """Holder, purpose and expiry of a Lease; None when free (absent, released or expired)."""
    if not lease:
        return None
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
    if not holder or renewed is None:
        return None
    expires = renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))
    if expires <= now():
        return None
    annotations = lease.get("metadata", {}).get("annotations") or {}
    return {
        "holder": holder,
        "purpose": annotations.get(_PURPOSE, ""),
        "host": annotations.get(_HOST, ""),
        "pid": annotations.get(_PID, ""),
        "expires_at": expires.isoformat(),
        "expires_in_s": round((expires - now()).total_seconds(), 1),
    }


def _process_gone(pid_text: str) -> bool:
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class RolloutLock:
    """The release's Lease (see the module docstring)."""

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        *,
        purpose: str,
        duration_s: int = 60,
        renew_every_s: float = 10.0,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.purpose = purpose
        self.duration_s = duration_s
        self.renew_every_s = renew_every_s
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.holder = f"{getpass.getuser()}@{self.host} pid {self.pid}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._lost: str | None = None
        self.took_over: str | None = None

    # -- acquire / release -----------------------------------------------------------------------
    def _body(self, resource_version: str | None = None) -> dict[str, Any]:
        stamp = _micro_time(now())
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.cluster.namespace,
            "labels": {"app.kubernetes.io/managed-by": "tdeploy"},
            "annotations": {_PURPOSE: self.purpose, _HOST: self.host, _PID: str(self.pid)},
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": _API,
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration_s,
                "acquireTime": stamp,
                "renewTime": stamp,
            },
        }

    def acquire(self) -> RolloutLock:
        lease = self.cluster.get(_API, _PLURAL, self.name)
        if lease is None:
            try:
                self.cluster.create(_API, _PLURAL, self._body())
            except ClusterError as exc:
                if exc.status == 409:  # created by someone else in between
                    self._refuse(self.cluster.get(_API, _PLURAL, self.name))
                raise
        else:
            state = lease_state(lease)
            if state is not None and state["holder"] != self.holder:
                if state["host"] == self.host and _process_gone(state["pid"]):
                    self.took_over = state["holder"]  # a killed run of this machine
                else:
                    self._refuse(lease)
            version = lease.get("metadata", {}).get("resourceVersion")
            try:
                self.cluster.patch(_API, _PLURAL, self.name, self._body(version))
            except ClusterError as exc:
                if exc.status == 409:
                    self._refuse(self.cluster.get(_API, _PLURAL, self.name))
                raise
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewal", daemon=True)
        self._renewer.start()
        return self

    def _refuse(self, lease: dict[str, Any] | None) -> None:
        state = lease_state(lease) or {"holder": "someone", "purpose": "", "expires_in_s": 0}
        doing = f" ({state['purpose']})" if state.get("purpose") else ""
        raise LockHeld(
            f"another rollout of this release is running: Lease {self.name!r} is held by "
            f"{state['holder']}{doing}, for {state['expires_in_s']:.0f} s more unless renewed. "
            "Wait for it, or check it with `tdeploy status`"
        )

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every_s):
            try:
                lease = self.cluster.get(_API, _PLURAL, self.name)
                holder = (lease or {}).get("spec", {}).get("holderIdentity")
                if holder != self.holder:
                    self._lost = f"the Lease {self.name!r} is now held by {holder!r}"
                    return
                self.cluster.patch(
                    _API, _PLURAL, self.name, {"spec": {"renewTime": _micro_time(now())}}
                )
            except RolloutError:  # retried at the next tick; the Lease's expiry is the backstop
                continue

    def ensure_held(self) -> None:
        """Raise unless this process still holds the Lease (checked before every change)."""
        if self._lost:
            raise LockHeld(f"lost the rollout lock: {self._lost}; stopping before any change")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        with contextlib.suppress(RolloutError):
            lease = self.cluster.get(_API, _PLURAL, self.name)
            if lease and lease.get("spec", {}).get("holderIdentity") == self.holder:
                self.cluster.patch(
                    _API,
                    _PLURAL,
                    self.name,
                    {"spec": {"holderIdentity": None, "renewTime": None, "acquireTime": None}},
                )

    def __enter__(self) -> RolloutLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
