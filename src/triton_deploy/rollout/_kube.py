"""The Kubernetes API through the official ``kubernetes`` client, as plain JSON dicts.

    cluster = Cluster("ml")                       # kubeconfig (or in-cluster) credentials
    cluster.ping()                                # "v1.30.2": fails fast when unreachable
    svc = cluster.get("v1", "services", "triton-triton-deploy")
    pods = cluster.pods({"app.kubernetes.io/instance": "triton", "color": "green"})
    text = cluster.pod_proxy_get("triton-...-green-7d9f-x2", 8002, "metrics")

Objects are read and written as the API's own JSON (camelCase keys), not the client's model
classes. Every API error becomes a ``ClusterError`` that names the call and what to do.
Pod metrics are read through the API server's pod proxy, so the driver needs no network route
to the pods (RBAC: ``get`` on ``pods/proxy``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ._errors import ClusterError, ClusterUnreachable

__all__ = ["Cluster", "matches_labels"]

_MERGE_PATCH = "application/merge-patch+json"


def matches_labels(obj: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _path(api_version: str, plural: str, namespace: str, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


class Cluster:
    """One namespace of one cluster (see the module docstring)."""

    def __init__(
        self,
        namespace: str,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        request_timeout_s: float = 15.0,
    ) -> None:
        from kubernetes import client, config

        self.namespace = namespace
        self.request_timeout_s = request_timeout_s
        configuration = client.Configuration()
        try:
            if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
            else:
                config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise ClusterUnreachable(
                f"no usable Kubernetes credentials ({where}"
                + (f", context {context!r}" if context else "")
                + f"): {exc}"
            ) from None
        except FileNotFoundError as exc:
            raise ClusterUnreachable(f"kubeconfig not found: {exc.filename}") from None
        configuration.retries = 1
        self.host = configuration.host
        self._api = client.ApiClient(configuration)

    def close(self) -> None:
        self._api.close()

    # -- raw REST --------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout_s: float | None = None,
        what: str,
    ) -> Any:
        """The raw response (status checked, body not read yet)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json, */*"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            request = self._api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                *request, _request_timeout=timeout_s or self.request_timeout_s
            )
            if not 200 <= response.status <= 299:
                response.read()
                raise ApiException.from_response(http_resp=response, body=None, data=None)
        except ApiException as exc:
            raise self._api_error(exc, what) from None
        except HTTPError as exc:
            raise ClusterUnreachable(
                f"{what}: cannot reach the Kubernetes API at {self.host}: {_reason(exc)}"
            ) from None
        return response

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        what: str,
        timeout_s: float | None = None,
    ) -> Any:
        from urllib3.exceptions import HTTPError

        response = self._request(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout_s=timeout_s,
            what=what,
        )
        try:
            raw = response.read()
        except HTTPError as exc:
            raise ClusterUnreachable(
                f"{what}: the Kubernetes API stopped answering: {_reason(exc)}"
            ) from None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            return text

    def watch_changes(
        self,
        api_version: str,
        plural: str,
        name: str,
        *,
        seen: dict[str, Any] | None,
        timeout_s: float,
    ) -> dict[str, Any] | None:
        """Block until the object ``name`` differs from ``seen`` (a watch), or ``timeout_s``
        passed; returns the new object, or None on timeout or when the watch ended."""
        from urllib3.exceptions import HTTPError

        query = [
            ("watch", "true"),
            ("fieldSelector", f"metadata.name={name}"),
            ("timeoutSeconds", str(max(int(timeout_s), 1))),
        ]
        try:
            response = self._request(
                "GET",
                _path(api_version, plural, self.namespace),
                query=query,
                timeout_s=timeout_s,
                what=f"watching {plural}/{name}",
            )
        except ClusterUnreachable:
            raise
        try:
            stream = response.response
            buffer = b""
            for chunk in stream.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if obj.get("metadata", {}).get("name") != name:
                        continue
                    if event.get("type") == "DELETED":
                        return {}
                    if seen is None or _strip_volatile(obj) != _strip_volatile(seen):
                        return obj
        except (HTTPError, OSError, ValueError):
            return None  # a read timeout ends the watch: the caller looks again
        finally:
            response.response.release_conn()
        return None

    def _api_error(self, exc: Any, what: str) -> ClusterError:
        reason = ""
        try:
            reason = json.loads(exc.body).get("message", "")
        except (TypeError, ValueError, AttributeError):
            reason = str(exc.reason or "")
        if exc.status == 403:
            return ClusterError(
                f"{what}: forbidden ({reason}); the driver needs get/list/watch on deployments, "
                "services and pods, get on pods/proxy, and get/create/patch on leases and "
                f"configmaps in namespace {self.namespace!r}",
                403,
            )
        if exc.status == 401:
            return ClusterError(
                f"{what}: unauthorized: the kubeconfig credentials were refused", 401
            )
        return ClusterError(f"{what}: HTTP {exc.status} {reason}".rstrip(), exc.status)

    # -- objects --------------------------------------------------------------------------------
    def ping(self) -> str:
        """The API server's version; ``ClusterUnreachable`` when it does not answer."""
        data = self._call("GET", "/version", what="connecting to the cluster", timeout_s=10)
        return str(data.get("gitVersion", "?")) if isinstance(data, dict) else "?"

    def get(self, api_version: str, plural: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        try:
            data = self._call(
                "GET",
                _path(api_version, plural, self.namespace, name),
                what=f"reading {plural}/{name}",
            )
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise
        return data if isinstance(data, dict) else None

    def list_objects(
        self, api_version: str, plural: str, selector: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a kind; with ``selector``, only those carrying every label (filtered
        here as well as by the server)."""
        query = (
            [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
            if selector
            else []
        )
        data = self._call(
            "GET", _path(api_version, plural, self.namespace), query=query, what=f"listing {plural}"
        )
        items = list(data.get("items", [])) if isinstance(data, dict) else []
        return [item for item in items if not selector or matches_labels(item, selector)]

    def create(self, api_version: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name", "?")
        return self._call(
            "POST",
            _path(api_version, plural, self.namespace),
            body=body,
            content_type="application/json",
            what=f"creating {plural}/{name}",
        )

    def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: dict[str, Any],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """A JSON merge patch; with ``metadata.resourceVersion`` in it, the server refuses it
        (409) when the object changed since it was read. ``dry_run``: the API server runs every
        check (schema, validation rules, admission webhooks) and returns the object as it would
        store it, without storing it (``?dryRun=All``)."""
        return self._call(
            "PATCH",
            _path(api_version, plural, self.namespace, name),
            query=[("dryRun", "All")] if dry_run else None,
            body=patch,
            content_type=_MERGE_PATCH,
            what=f"{'checking (server-side dry run) an update of' if dry_run else 'updating'} "
            f"{plural}/{name}",
        )

    def delete(self, api_version: str, plural: str, name: str) -> None:
        self._call(
            "DELETE",
            _path(api_version, plural, self.namespace, name),
            what=f"deleting {plural}/{name}",
        )

    # -- conveniences ---------------------------------------------------------------------------
    def pods(self, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        return self.list_objects("v1", "pods", selector)

    def pod_proxy_get(self, pod: str, port: int, path: str, *, timeout_s: float = 10) -> str:
        """GET ``path`` on ``pod:port`` through the API server's pod proxy."""
        data = self._call(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}",
            what=f"reading {path} of pod {pod} (port {port}) through the API server proxy",
            timeout_s=timeout_s,
        )
        return data if isinstance(data, str) else json.dumps(data)


def _strip_volatile(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields")
    }
    return {**obj, "metadata": meta}


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    return " ".join(text.split())[:300]
