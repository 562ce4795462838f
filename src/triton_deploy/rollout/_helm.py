"""The real ``helm`` CLI, run as a subprocess; every call is logged.

    helm = Helm(namespace="ml", on_call=print)
    values = helm.values("triton", computed=True)       # helm get values -o json --all
    docs = helm.manifest("triton")                      # helm get manifest, parsed
    helm.upgrade("triton", "./charts/triton-deploy", {"activeColor": "green"},
                 description="tdeploy: promote green")  # --reuse-values -f overrides.yaml

Overrides go through a values file (``-f``), never ``--set``: no escaping rules for URIs with
commas or dots, and types stay what YAML says. Each call is reported to ``on_call`` with its
command line, the overrides, the exit code and the time it took.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._errors import ClusterUnreachable, HelmError, ReleaseNotFound

__all__ = ["Helm", "HelmCall", "parse_manifest"]


@dataclass
class HelmCall:
    """One helm invocation, as logged."""

    argv: list[str]
    overrides: dict[str, Any] | None = None
    returncode: int | None = None
    seconds: float = 0.0
    stderr_tail: str = ""
    started_at: float = field(default_factory=time.time)

    def command_line(self) -> str:
        line = " ".join(_quote(arg) for arg in self.argv)
        if self.overrides is not None:
            flow = yaml.safe_dump(self.overrides, default_flow_style=True, width=10_000).strip()
            line += f"   # overrides: {flow}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "overrides": self.overrides,
            "returncode": self.returncode,
            "seconds": round(self.seconds, 3),
        }


def _quote(arg: str) -> str:
    return arg if arg and all(c.isalnum() or c in "-_./=:,@+" for c in arg) else repr(arg)


def parse_manifest(text: str) -> list[dict[str, Any]]:
    """The objects of a rendered manifest (a YAML stream), empty documents dropped. Parsed by
    libyaml where PyYAML has it (a chart's manifest: 11 ms instead of 103)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(text, Loader=loader) if isinstance(doc, dict) and doc]


class Helm:
    """The ``helm`` executable for one namespace (and kubeconfig/context)."""

    def __init__(
        self,
        *,
        namespace: str,
        kubeconfig: str | None = None,
        kube_context: str | None = None,
        executable: str = "helm",
        timeout_s: float = 600.0,
        on_call: Callable[[HelmCall], None] | None = None,
    ) -> None:
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.kube_context = kube_context
        self.executable = executable
        self.timeout_s = timeout_s
        self.on_call = on_call
        self.calls: list[HelmCall] = []

    # -- plumbing ------------------------------------------------------------------------------
    def _global_args(self) -> list[str]:
        args = ["--namespace", self.namespace]
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.kube_context:
            args += ["--kube-context", self.kube_context]
        return args

    def _run(
        self, args: Sequence[str], *, overrides: dict[str, Any] | None = None, what: str
    ) -> str:
        binary = shutil.which(self.executable)
        if binary is None:
            raise HelmError(
                f"the helm CLI ({self.executable!r}) is not on PATH: install Helm 3.13+ "
                "(https://helm.sh/docs/intro/install/)"
            )
        argv = [self.executable, *args]
        call = HelmCall(argv=argv, overrides=overrides)
        started = time.monotonic()
        try:
            completed = subprocess.run(
                [binary, *args],
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=dict(os.environ),
                check=False,
            )
        except subprocess.TimeoutExpired:
            call.seconds = time.monotonic() - started
            self._log(call)
            raise HelmError(f"{what}: helm did not finish within {self.timeout_s:g} s") from None
        call.returncode = completed.returncode
        call.seconds = time.monotonic() - started
        call.stderr_tail = completed.stderr.strip()[-2000:]
        self._log(call)
        if completed.returncode != 0:
            self._raise(what, completed.stderr)
        return completed.stdout

    def _log(self, call: HelmCall) -> None:
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)

    def _raise(self, what: str, stderr: str) -> None:
        message = " ".join(stderr.strip().split()) or "(no message)"
        if "release: not found" in stderr or "has no deployed releases" in stderr:
            raise ReleaseNotFound(f"{what}: {message}")
        if "cluster unreachable" in stderr.lower():
            raise ClusterUnreachable(f"{what}: {message}")
        raise HelmError(f"{what} failed: {message}")

    # -- commands ------------------------------------------------------------------------------
    def version(self) -> str:
        return self._run(["version", "--short"], what="helm version").strip()

    def values(self, release: str, *, computed: bool = False) -> dict[str, Any]:
        """``helm get values``: the user-supplied values, or every computed value."""
        args = ["get", "values", release, *self._global_args(), "--output", "json"]
        if computed:
            args.append("--all")
        out = self._run(args, what=f"reading the values of release {release!r}")
        data = json.loads(out) if out.strip() else {}
        return data if isinstance(data, dict) else {}

    def manifest(self, release: str) -> list[dict[str, Any]]:
        out = self._run(
            ["get", "manifest", release, *self._global_args()],
            what=f"reading the manifest of release {release!r}",
        )
        return parse_manifest(out)

    def history(self, release: str, *, limit: int = 20) -> list[dict[str, Any]]:
        out = self._run(
            ["history", release, *self._global_args(), "--max", str(limit), "--output", "json"],
            what=f"reading the history of release {release!r}",
        )
        data = json.loads(out) if out.strip() else []
        return data if isinstance(data, list) else []

    def upgrade(
        self,
        release: str,
        chart: str,
        overrides: dict[str, Any],
        *,
        description: str,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """``helm upgrade --reuse-values -f <overrides>``; returns the release (``-o json``),
        whose ``manifest`` is what was (or, with ``dry_run``, would be) applied."""
        with tempfile.TemporaryDirectory(prefix="tdeploy-helm-") as tmp:
            values_file = Path(tmp) / "overrides.yaml"
            values_file.write_text(yaml.safe_dump(overrides, sort_keys=False))
            args = [
                "upgrade",
                release,
                chart,
                *self._global_args(),
                "--reuse-values",
                "--values",
                str(values_file),
                "--description",
                description,
                "--output",
                "json",
            ]
            if dry_run:
                args.append("--dry-run=server")
            what = f"helm upgrade of release {release!r}" + (" (dry run)" if dry_run else "")
            out = self._run(args, overrides=overrides, what=what)
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            raise HelmError(f"{what}: helm did not print a JSON release: {out[:300]!r}") from None
        return data if isinstance(data, dict) else {}
