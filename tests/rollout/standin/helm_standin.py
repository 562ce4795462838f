"""TEST STAND-IN for the ``helm`` CLI. Not Helm: used only by the tests, put on PATH as ``helm``.

The helm CLI cannot be installed here. This executable implements the few commands the rollout
driver runs, the way Helm 3.13+/4 does them, so that the driver runs its real subprocess calls:

- the chart is rendered by Helm's own Go engine (helm-python-sdk: ``Chart.load(dir).render``),
  values coalesced with ``Chart.merge_values`` and checked with ``validate_schema``, ``--set``
  parsed by Helm's own strvals parser;
- the rendered objects are applied to the Kubernetes API given by the kubeconfig (in the tests:
  kmock's KubernetesEmulator over real HTTP): created, changed (a JSON merge patch that makes
  the stored object equal to the rendered one; ``metadata.generation`` bumped when ``spec``
  changes, as the API server does), or deleted when they left the manifest; hooks are skipped;
- releases are stored as Helm stores them: Secrets ``sh.helm.release.v1.<name>.v<revision>``
  holding base64(gzip(release JSON)), so ``get values``, ``--reuse-values``, ``history`` and
  ``status`` read what earlier processes wrote.

Commands: ``version``, ``upgrade [--install] [--reuse-values] [-f FILE]... [--set X]...
[--description D] [--dry-run[=client|server]] [-o json]``, ``install``, ``get values [--all]
[-o json|yaml]``, ``get manifest``, ``history [-o json] [--max N]``, ``status [-o json]``; the
global flags ``-n/--namespace``, ``--kubeconfig``, ``--kube-context``. Errors print Helm's
messages ("Error: release: not found", "Error: UPGRADE FAILED: ...") and exit 1.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

# libyaml's safe loader and dumper where PyYAML has them: this process starts for every helm
# call, and a chart's manifest takes 0.1 s to parse and 0.06 s to write in pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Cluster:
    """Plain HTTP to the Kubernetes API of the kubeconfig (no client library: this process
    starts for every helm call)."""

    def __init__(self, namespace: str, *, kubeconfig: str | None, context: str | None) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        config = yaml.safe_load(Path(path).read_text())
        name = context or config["current-context"]
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == name)
        self.server = next(
            c["cluster"]["server"] for c in config["clusters"] if c["name"] == ctx["cluster"]
        )
        self.namespace = namespace

    def _request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                text = reply.read().decode()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode()[:300]) from None
        except OSError as exc:
            raise ApiError(0, f"Kubernetes cluster unreachable: {exc}") from None
        return json.loads(text) if text.strip() else None

    def _path(self, api_version: str, plural: str, name: str | None = None) -> str:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        path = f"{base}/namespaces/{self.namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def get(self, api_version: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", self._path(api_version, plural, name))  # type: ignore[no-any-return]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_objects(self, api_version: str, plural: str) -> list[dict[str, Any]]:
        return list(self._request("GET", self._path(api_version, plural)).get("items", []))

    def create(self, api_version: str, plural: str, body: dict[str, Any]) -> None:
        self._request("POST", self._path(api_version, plural), body)

    def patch(self, api_version: str, plural: str, name: str, patch: dict[str, Any]) -> None:
        self._request(
            "PATCH", self._path(api_version, plural, name), patch, "application/merge-patch+json"
        )

    def delete(self, api_version: str, plural: str, name: str) -> None:
        self._request("DELETE", self._path(api_version, plural, name))


SECRET_PREFIX = "sh.helm.release.v1."
KINDS = {  # kind -> (apiVersion for the URL, plural)
    "Service": ("v1", "services"),
    "ServiceAccount": ("v1", "serviceaccounts"),
    "ConfigMap": ("v1", "configmaps"),
    "Secret": ("v1", "secrets"),
    "Pod": ("v1", "pods"),
    "Deployment": ("apps/v1", "deployments"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
    "ServiceMonitor": ("monitoring.coreos.com/v1", "servicemonitors"),
    "PrometheusRule": ("monitoring.coreos.com/v1", "prometheusrules"),
    "GRPCRoute": ("gateway.networking.k8s.io/v1", "grpcroutes"),
}
_BOOKKEEPING = {"resourceVersion", "generation", "uid", "creationTimestamp", "managedFields"}


class HelmFailure(Exception):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat()


def coalesce(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """User values over user values, as Helm merges --reuse-values with new ones (null deletes)."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = value
    return out


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new``."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch


class Releases:
    """Helm's Secret storage driver, over the Kubernetes API."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name

    def all(self) -> list[dict[str, Any]]:
        out = []
        for secret in self.cluster.list_objects("v1", "secrets"):
            if not secret["metadata"]["name"].startswith(f"{SECRET_PREFIX}{self.name}.v"):
                continue
            wire = base64.b64decode(secret["data"]["release"])
            out.append(json.loads(gzip.decompress(base64.b64decode(wire))))
        return sorted(out, key=lambda r: r["version"])

    def last(self) -> dict[str, Any]:
        releases = self.all()
        if not releases:
            raise HelmFailure("release: not found")
        return releases[-1]

    def store(self, release: dict[str, Any]) -> None:
        encoded = base64.b64encode(gzip.compress(json.dumps(release).encode()))
        name = f"{SECRET_PREFIX}{self.name}.v{release['version']}"
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "helm.sh/release.v1",
            "metadata": {
                "name": name,
                "namespace": self.cluster.namespace,
                "labels": {
                    "name": self.name,
                    "owner": "helm",
                    "status": release["info"]["status"],
                    "version": str(release["version"]),
                },
            },
            "data": {"release": base64.b64encode(encoded).decode()},
        }
        if self.cluster.get("v1", "secrets", name) is None:
            self.cluster.create("v1", "secrets", body)
        else:
            self.cluster.patch(
                "v1", "secrets", name, {"metadata": body["metadata"], "data": body["data"]}
            )


def _docs(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(manifest, Loader=_LOADER) if isinstance(d, dict) and d]


def render(
    chart_dir: str, config: dict[str, Any], name: str, namespace: str, revision: int
) -> tuple[str, dict[str, Any]]:
    import helm_python

    chart = helm_python.Chart.load(chart_dir)
    computed = chart.merge_values(config)
    try:
        chart.validate_schema(computed)
        rendered = chart.render(config, name=name, namespace=namespace, revision=revision)
    except helm_python.HelmError as exc:
        raise HelmFailure(str(exc)) from None
    parts = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".txt") or not text.strip():
            continue
        for doc in _docs(text):
            if (doc.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook"):
                continue  # hooks (helm test pods) are not part of the release manifest
            parts.append(
                f"---\n# Source: {path}\n{yaml.dump(doc, Dumper=_DUMPER, sort_keys=False)}"
            )
    meta = chart.metadata
    info = {k: meta.get(k) for k in ("name", "version", "appVersion")}
    # Helm keeps the whole chart in the release; the stand-in keeps its directory and the values
    # it coalesced, so that `get values --all` (the rollout reads it every step) need not load
    # Helm's engine again: the chart and the config of a revision never change.
    chart_record = {"metadata": info, "path": str(Path(chart_dir).resolve()), "values": computed}
    return "".join(parts), chart_record


def apply(cluster: Cluster, old_manifest: str, new_manifest: str) -> None:
    old = {(d["kind"], d["metadata"]["name"]): d for d in _docs(old_manifest)}
    new = {(d["kind"], d["metadata"]["name"]): d for d in _docs(new_manifest)}
    for (kind, name), doc in new.items():
        api_version, plural = KINDS[kind]
        live = cluster.get(api_version, plural, name)
        if live is None:
            body = json.loads(json.dumps(doc))
            if "spec" in body:
                body["metadata"]["generation"] = 1
            cluster.create(api_version, plural, body)
            continue
        current = {k: v for k, v in live.items() if k != "status"}
        current["metadata"] = {k: v for k, v in live["metadata"].items() if k not in _BOOKKEEPING}
        patch = merge_patch(current, doc)
        if not patch:
            continue
        if "spec" in patch:
            patch.setdefault("metadata", {})["generation"] = (
                int(live["metadata"].get("generation") or 1) + 1
            )
        cluster.patch(api_version, plural, name, patch)
    for kind, name in old.keys() - new.keys():
        api_version, plural = KINDS[kind]
        if cluster.get(api_version, plural, name) is not None:
            cluster.delete(api_version, plural, name)


def _values_file(path: str) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise HelmFailure(f"values file {path} is not a mapping")
    return data


def cmd_upgrade(args: argparse.Namespace, cluster: Cluster, install_only: bool = False) -> int:
    import helm_python

    releases = Releases(cluster, args.release)
    history = releases.all()
    if not history and not (args.install or install_only):
        raise HelmFailure(f'UPGRADE FAILED: "{args.release}" has no deployed releases')
    previous = history[-1] if history else None
    config: dict[str, Any] = dict(previous["config"]) if (previous and args.reuse_values) else {}
    for path in args.values or []:
        config = coalesce(config, _values_file(path))
    for expression in args.set or []:
        config = coalesce(config, helm_python.parse_set_string(expression))
    revision = (previous["version"] + 1) if previous else 1
    try:
        manifest, chart = render(args.chart, config, args.release, cluster.namespace, revision)
    except HelmFailure as exc:
        raise HelmFailure(f"{'UPGRADE' if previous else 'INSTALLATION'} FAILED: {exc}") from None
    release = {
        "name": args.release,
        "namespace": cluster.namespace,
        "version": revision,
        "info": {
            "first_deployed": previous["info"]["first_deployed"] if previous else _now(),
            "last_deployed": _now(),
            "status": "deployed",
            "description": args.description
            or ("Upgrade complete" if previous else "Install complete"),
        },
        "chart": chart,
        "config": config,
        "manifest": manifest,
    }
    if args.dry_run is None:
        apply(cluster, previous["manifest"] if previous else "", manifest)
        if previous:
            previous["info"]["status"] = "superseded"
            releases.store(previous)
        releases.store(release)
    else:
        release["info"]["status"] = "pending-upgrade" if previous else "pending-install"
    if args.output == "json":
        print(json.dumps(release))
    else:
        print(f'Release "{args.release}" has been upgraded. Happy Helming!')
    return 0


def cmd_get(args: argparse.Namespace, cluster: Cluster) -> int:
    release = Releases(cluster, args.release).last()
    if args.what == "manifest":
        print(release["manifest"])
        return 0
    values = release["config"]
    if args.all:  # the chart's values coalesced with the config when the revision was made
        values = release["chart"]["values"]
    print(json.dumps(values) if args.output == "json" else yaml.safe_dump(values))
    return 0


def cmd_history(args: argparse.Namespace, cluster: Cluster) -> int:
    releases = Releases(cluster, args.release).all()
    if not releases:
        raise HelmFailure("release: not found")
    rows = [
        {
            "revision": r["version"],
            "updated": r["info"]["last_deployed"],
            "status": r["info"]["status"],
            "chart": f"{r['chart']['metadata']['name']}-{r['chart']['metadata']['version']}",
            "app_version": r["chart"]["metadata"].get("appVersion", ""),
            "description": r["info"]["description"],
        }
        for r in releases[-args.max :]
    ]
    print(json.dumps(rows) if args.output == "json" else yaml.safe_dump(rows))
    return 0


def cmd_status(args: argparse.Namespace, cluster: Cluster) -> int:
    release = Releases(cluster, args.release).last()
    print(json.dumps(release))
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default="default")
    common.add_argument("--kubeconfig")
    common.add_argument("--kube-context")
    common.add_argument("-o", "--output", default="table")
    root = argparse.ArgumentParser(prog="helm")
    sub = root.add_subparsers(dest="command", required=True)
    version = sub.add_parser("version", parents=[common])
    version.add_argument("--short", action="store_true")
    for name in ("upgrade", "install"):
        p = sub.add_parser(name, parents=[common])
        p.add_argument("release")
        p.add_argument("chart")
        p.add_argument("-i", "--install", action="store_true")
        p.add_argument("--reuse-values", action="store_true")
        p.add_argument("-f", "--values", action="append")
        p.add_argument("--set", action="append")
        p.add_argument("--description")
        p.add_argument("--dry-run", nargs="?", const="client", default=None)
        p.add_argument("--wait", action="store_true")
    get = sub.add_parser("get")
    get_sub = get.add_subparsers(dest="what", required=True)
    for name in ("values", "manifest"):
        p = get_sub.add_parser(name, parents=[common])
        p.add_argument("release")
        p.add_argument("-a", "--all", action="store_true")
        p.add_argument("--revision", type=int)
    history = sub.add_parser("history", parents=[common])
    history.add_argument("release")
    history.add_argument("--max", type=int, default=256)
    status = sub.add_parser("status", parents=[common])
    status.add_argument("release")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "version":
        print("v3.16.2+tdeploy-test-standin (helm-python-sdk)")
        return 0
    try:
        cluster = Cluster(args.namespace, kubeconfig=args.kubeconfig, context=args.kube_context)
        if args.command in ("upgrade", "install"):
            return cmd_upgrade(args, cluster, install_only=args.command == "install")
        if args.command == "get":
            return cmd_get(args, cluster)
        if args.command == "history":
            return cmd_history(args, cluster)
        return cmd_status(args, cluster)
    except HelmFailure as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
