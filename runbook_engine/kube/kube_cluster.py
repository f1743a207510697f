"""``KubeCluster``: the ``Cluster`` protocol over the official ``kubernetes`` client.

Every request goes through one ``ApiClient`` (kubeconfig + context, or in-cluster service account)
to REST paths from the kind registry, so built-in kinds, mesh CRDs and CRDs discovered at connect
time are all handled the same way. Writes are server-side apply (``application/apply-patch+yaml``
with a field manager, ``force`` and ``dryRun=All``), the four patch types and deletes with a
propagation policy.

API errors become ``runbook_engine.errors``: 404 ``NotFoundError``, 409 ``ConflictError``,
400/422 ``InvalidObjectError`` (with the server's causes), 429/5xx and connection failures
``TransientClusterError``. Transient errors are retried with jittered exponential backoff, bounded
in attempts and total time, honouring ``Retry-After``. Every verb used is safe to repeat (apply,
merge and strategic patches, delete, reads) except a JSON patch, which is retried only when the
server cannot have acted on it (429, or the connection was never made). Nothing here creates with
POST, so no create is ever repeated blindly. Credentials, request bodies and headers are never
logged; error messages pass through ``redact_text``.
"""

from __future__ import annotations

import builtins
import email.utils
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_before_delay
from tenacity.wait import wait_random_exponential

from runbook_engine.errors import (
    ClusterError,
    ConflictError,
    InvalidObjectError,
    NotFoundError,
    TransientClusterError,
    UserInputError,
)
from runbook_engine.kube.cluster import FIELD_MANAGER, Obj, PatchType, Propagation
from runbook_engine.kube.merge import SERVER_METADATA
from runbook_engine.kube.redact import redact_text
from runbook_engine.kube.refs import ALL_VERBS, REGISTRY, KindInfo, KindRegistry, ObjectRef

log = logging.getLogger(__name__)

# The client's config loaders are untyped; name them once with the types this module relies on.
_new_client_from_config: Callable[..., Any] = k8s_config.new_client_from_config
_list_kube_config_contexts: Callable[..., tuple[list[dict[str, Any]], dict[str, Any]]] = (
    k8s_config.list_kube_config_contexts
)
_load_incluster_config: Callable[..., None] = k8s_config.load_incluster_config

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient API faults are retried: at most ``attempts`` tries within ``total_seconds``."""

    attempts: int = 5
    total_seconds: float = 30.0
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class _Request:
    """One API call, described well enough to send, count, retry and explain."""

    verb: str  # what the request counter and messages call it: get, list, apply, …
    kind: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    content_type: str = "application/json"
    idempotent: bool = True


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data or b"null")


class _Unsent(TransientClusterError):
    """The connection was never established: the server cannot have acted on the request."""


class KubeCluster:
    """A ``Cluster`` reached through one ``kubernetes.client.ApiClient``."""

    def __init__(
        self,
        api_client: Any,
        name: str,
        *,
        registry: KindRegistry = REGISTRY,
        retry: RetryPolicy | None = None,
        default_namespace: str = "default",
        request_timeout: tuple[float, float] = (5.0, 60.0),
        discover: bool = True,
    ) -> None:
        self._api = api_client
        self._name = name
        self._registry = registry
        self._retry = retry or RetryPolicy()
        self._timeout = request_timeout
        self.default_namespace = default_namespace
        self._requests: Counter[str] = Counter()
        self._requests_lock = threading.Lock()
        if api_client.configuration.retries is not False:
            # One retry layer (ours): urllib3's own retries would hide attempts and sleep on Retry-After.
            api_client.configuration.retries = False
            api_client.rest_client = k8s_client.rest.RESTClientObject(api_client.configuration)
        if discover:
            self._discover_at_connect()

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls,
        path: Path | str | None,
        context: str | None,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        registry: KindRegistry = REGISTRY,
    ) -> KubeCluster:
        """Connect with a kubeconfig file (``$KUBECONFIG`` or ``~/.kube/config`` when None) and context."""
        config_file = str(path) if path is not None else None
        try:
            api = _new_client_from_config(config_file=config_file, context=context, persist_config=False,
                                          client_configuration=_configuration())
            contexts, active = _list_kube_config_contexts(config_file)
        except (k8s_config.ConfigException, OSError) as exc:
            raise UserInputError(
                f"cannot load kubeconfig {config_file or '(default)'} context {context or '(current)'}: "
                f"{redact_text(str(exc))}",
                hint="check the kubeconfig path and that the context exists (kubectl config get-contexts)",
            ) from exc
        chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
        namespace = str(((chosen or {}).get("context") or {}).get("namespace") or "default")
        label = name or str((chosen or {}).get("name") or "kubeconfig")
        return cls(api, label, registry=registry, retry=retry, default_namespace=namespace)

    @classmethod
    def in_cluster(
        cls, name: str = "in-cluster", *, retry: RetryPolicy | None = None, registry: KindRegistry = REGISTRY
    ) -> KubeCluster:
        """Connect with the pod's service account."""
        configuration = _configuration()
        try:
            _load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException as exc:
            raise UserInputError(
                f"not running in a cluster: {exc}",
                hint="use a kubeconfig and context for this cluster in the inventory",
            ) from exc
        namespace = "default"
        if IN_CLUSTER_NAMESPACE_FILE.exists():
            namespace = IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or "default"
        return cls(k8s_client.ApiClient(configuration), name, registry=registry, retry=retry,
                   default_namespace=namespace)

    @property
    def name(self) -> str:
        return self._name

    @property
    def requests(self) -> Counter[str]:
        """Requests sent (every attempt), by ``"<verb> <kind>"``."""
        with self._requests_lock:
            return Counter(self._requests)

    # -- discovery -------------------------------------------------------------------------------

    def discover(self) -> builtins.list[KindInfo]:
        """Register every kind the server serves in a group version the registry does not know yet."""
        groups = self._send(_Request("discover", "APIGroupList", "GET", "/apis")).json() or {}
        known = {info.api_version for info in self._registry}
        found: list[KindInfo] = []
        for group in groups.get("groups") or []:
            for version in group.get("versions") or []:
                group_version = str(version.get("groupVersion", ""))
                if group_version and group_version not in known:
                    found.extend(self._discover_version(group_version))
        return found

    def _discover_at_connect(self) -> None:
        """Discover, tolerating a user who may not read discovery; an unreachable server still fails here."""
        try:
            self.discover()
        except ClusterError as exc:
            if exc.retryable:
                raise
            log.warning("API discovery on %s failed (%s); only registered kinds are known", self._name, exc)

    def _discover_version(self, group_version: str) -> builtins.list[KindInfo]:
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        response = self._send_optional(_Request("discover", "APIResourceList", "GET", path))
        resources = (response.json() or {}).get("resources") or [] if response else []
        subresources: dict[str, list[str]] = {}
        for res in resources:
            plural, _, sub = str(res.get("name", "")).partition("/")
            if sub:
                subresources.setdefault(plural, []).append(sub)
        return [
            self._registry.register(
                KindInfo(
                    group_version,
                    str(res["kind"]),
                    str(res["name"]),
                    bool(res.get("namespaced", True)),
                    tuple(res.get("shortNames") or ()),
                    tuple(res.get("verbs") or ALL_VERBS),
                    tuple(subresources.get(str(res["name"]), ())),
                    tuple(res.get("categories") or ()),
                )
            )
            for res in resources
            if "/" not in str(res.get("name", "")) and res.get("kind")
        ]

    def _kind(self, api_version: str, kind: str) -> KindInfo:
        """The registry entry; a kind not known yet is looked up once more (a CRD installed meanwhile)."""
        info = self._registry.find(api_version, kind)
        if info is None:
            self._discover_version(api_version)
        return self._registry.get(api_version, kind)

    def _served(self, api_version: str, kind: str) -> KindInfo | None:
        """The kind, or None when the server does not serve it (so no object of it exists)."""
        try:
            return self._kind(api_version, kind)
        except NotFoundError:
            return None

    # -- reads -----------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> Obj | None:
        info = self._served(ref.api_version, ref.kind)
        if info is None:
            return None
        path = info.path(self._namespace(info, ref.namespace), ref.name)
        response = self._send_optional(_Request("get", ref.kind, "GET", path))
        return _with_type(response.json(), info) if response else None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> builtins.list[Obj]:
        info = self._served(api_version, kind)
        if info is None:
            return []
        path = info.path(namespace if info.namespaced else None)
        base = (("labelSelector", label_selector),) if label_selector else ()
        items: list[Obj] = []
        token = ""
        while True:
            query = base + ((("continue", token),) if token else ())
            response = self._send_optional(_Request("list", kind, "GET", path, query))
            page = (response.json() or {}) if response else {}  # 404: the kind is not served
            items.extend(_with_type(item, info) for item in page.get("items") or [])
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items

    def pod_logs(self, namespace: str, name: str, container: str | None = None, tail_lines: int | None = None) -> str:
        query: list[tuple[str, str]] = []
        if container:
            query.append(("container", container))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        response = self._send(_Request("log", "Pod", "GET", path, tuple(query)))
        return response.data.decode("utf-8", errors="replace")

    # -- writes ----------------------------------------------------------------------------------

    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str = FIELD_MANAGER,
        dry_run: bool = False,
        force: bool = True,
    ) -> Obj:
        ref = ObjectRef.of(obj)
        if not (ref.api_version and ref.kind and ref.name):
            raise InvalidObjectError(
                "object is missing apiVersion, kind or metadata.name", status=422, reason="Invalid",
                hint="every manifest needs apiVersion, kind and metadata.name",
            )
        info = self._kind(ref.api_version, ref.kind)
        namespace = self._namespace(info, ref.namespace)
        body = _apply_body(obj, namespace)
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        request = _Request("apply", ref.kind, "PATCH", info.path(namespace, ref.name), tuple(query), body,
                           PatchType.APPLY.value)
        return _with_type(self._send(request).json(), info)

    def patch(
        self,
        ref: ObjectRef,
        patch: Any,
        *,
        patch_type: PatchType = PatchType.MERGE,
        dry_run: bool = False,
        field_manager: str = FIELD_MANAGER,
    ) -> Obj:
        if patch_type is PatchType.APPLY:
            return self.apply(patch, field_manager=field_manager, dry_run=dry_run)
        info = self._kind(ref.api_version, ref.kind)
        query = [("fieldManager", field_manager)]
        if dry_run:
            query.append(("dryRun", "All"))
        path = info.path(self._namespace(info, ref.namespace), ref.name)
        request = _Request("patch", ref.kind, "PATCH", path, tuple(query), patch, patch_type.value,
                           idempotent=patch_type is not PatchType.JSON)
        return _with_type(self._send(request).json(), info)

    def delete(
        self,
        ref: ObjectRef,
        *,
        dry_run: bool = False,
        propagation: Propagation = Propagation.BACKGROUND,
    ) -> Obj | None:
        info = self._served(ref.api_version, ref.kind)
        if info is None:
            return None
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation.value}
        query = [("propagationPolicy", propagation.value)]
        if dry_run:
            options["dryRun"] = ["All"]
            query.append(("dryRun", "All"))
        path = info.path(self._namespace(info, ref.namespace), ref.name)
        response = self._send_optional(_Request("delete", ref.kind, "DELETE", path, tuple(query), options))
        if response is None:
            return None
        last = response.json() or {}
        if last.get("kind") == "Status":  # some resources answer with a Status, not the object
            details = last.get("details") or {}
            meta = {"name": ref.name, "uid": details.get("uid")}
            last = {"metadata": {**meta, "namespace": ref.namespace} if info.namespaced else meta}
        return _with_type(last, info)

    # -- transport -------------------------------------------------------------------------------

    def _namespace(self, info: KindInfo, namespace: str) -> str | None:
        if not info.namespaced:
            return None
        return namespace or self.default_namespace

    def _send_optional(self, request: _Request) -> _Response | None:
        """``_send``, with a 404 answered as None."""
        try:
            return self._send(request)
        except NotFoundError:
            return None

    def _send(self, request: _Request) -> _Response:
        """Send, retrying transient faults where that is safe (see module docstring)."""
        retrying = Retrying(
            stop=stop_after_attempt(self._retry.attempts) | stop_before_delay(self._retry.total_seconds),
            wait=_RetryAfterWait(self._retry),
            retry=retry_if_exception(lambda exc: _retryable(exc, request)),
            sleep=self._retry.sleep,
            before_sleep=lambda state: _log_retry(state, request, self._retry.attempts),
            reraise=True,
        )
        response: _Response = retrying(self._send_once, request)
        return response

    def _send_once(self, request: _Request) -> _Response:
        with self._requests_lock:
            self._requests[f"{request.verb} {request.kind}"] += 1
        headers = {"Accept": "application/json", "Content-Type": request.content_type}
        method, url, headers, body, post = self._api.param_serialize(
            method=request.method,
            resource_path=request.path,
            query_params=list(request.query),
            header_params=headers,
            body=request.body,
            auth_settings=["BearerToken"],
        )
        try:
            raw = self._api.call_api(method, url, header_params=headers, body=body, post_params=post,
                                     _request_timeout=self._timeout)
            data = raw.read()
        except k8s_client.ApiException as exc:  # raised for TLS failures, before any response
            raise ClusterError(
                f"{request.method} {request.path}: {redact_text(str(exc.reason))}",
                status=int(exc.status or 0),
                reason="TLSError",
                hint="check the cluster's CA and server address in the kubeconfig",
            ) from exc
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            raise _Unsent(f"{request.method} {request.path}: cannot connect: {type(exc).__name__}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientClusterError(f"{request.method} {request.path}: {type(exc).__name__}") from exc
        response = _Response(int(raw.status), dict(raw.headers or {}), data or b"")
        if not 200 <= response.status < 300:
            raise _error_from(request, response)
        return response


def _configuration() -> Any:
    """A client configuration without urllib3 retries (``KubeCluster`` retries, and counts, itself)."""
    configuration = k8s_client.Configuration()
    configuration.retries = False
    return configuration


def _with_type(obj: Any, info: KindInfo) -> Obj:
    """List items come without ``apiVersion``/``kind``; put them back (in place: ``obj`` is freshly
    decoded from a response, nobody else holds it)."""
    out: Obj = obj if isinstance(obj, dict) else {}
    out.setdefault("apiVersion", info.api_version)
    out.setdefault("kind", info.kind)
    return out


def _apply_body(obj: Mapping[str, Any], namespace: str | None) -> Obj:
    """The apply configuration: server metadata and status dropped; namespace set to the request's.

    Dropping ``resourceVersion`` and ``uid`` makes apply declarative (no optimistic-lock
    precondition), so a journaled pre-image can be re-applied as it was recorded.
    """
    body: Obj = json.loads(json.dumps(dict(obj)))
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in SERVER_METADATA}
    if namespace:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    body["metadata"] = meta
    body.pop("status", None)
    return body


def _status_message(request: _Request, response: _Response) -> tuple[str, str]:
    """The server's message (with its causes) and reason, from a ``Status`` body when there is one."""
    try:
        status = response.json()
    except ValueError:
        status = None
    if not isinstance(status, dict):
        text = response.data.decode("utf-8", errors="replace").strip()[:500]
        return f"{request.method} {request.path}: HTTP {response.status} {text}", ""
    message = str(status.get("message") or f"HTTP {response.status}")
    causes = [
        f"{c.get('field', '')}: {c.get('message', '')}".strip(": ")
        for c in (status.get("details") or {}).get("causes") or []
    ]
    extra = [c for c in causes if c and c not in message]
    if extra:
        message += " (" + "; ".join(extra) + ")"
    return message, str(status.get("reason") or "")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from(request: _Request, response: _Response) -> ClusterError:
    message, reason = _status_message(request, response)
    message = redact_text(message)
    status = response.status
    if status == 404:
        return NotFoundError(message, status=status, reason=reason or "NotFound")
    if status == 409:
        return ConflictError(message, status=status, reason=reason or "Conflict",
                             hint="re-read the object, or apply with force to take over fields")
    if status in (400, 422):
        return InvalidObjectError(message, status=status, reason=reason or "Invalid")
    if status == 429 or status >= 500:
        return TransientClusterError(message, status=status, reason=reason, retry_after=_retry_after(response.headers))
    if status in (401, 403):
        return ClusterError(message, status=status, reason=reason or "Forbidden",
                            hint="check the credentials and RBAC permissions of the kubeconfig user")
    return ClusterError(message, status=status, reason=reason)


def _retryable(exc: BaseException, request: _Request) -> bool:
    if not isinstance(exc, TransientClusterError):
        return False
    return request.idempotent or isinstance(exc, _Unsent) or exc.status == 429


class _RetryAfterWait:
    """Jittered exponential backoff; a server's ``Retry-After`` wins when it asks for longer."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff)
        self._cap = policy.total_seconds

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._jitter(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientClusterError) and exc.retry_after is not None:
            return min(max(backoff, exc.retry_after), self._cap)
        return backoff


def _log_retry(state: RetryCallState, request: _Request, attempts: int) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "%s %s failed (%s); retrying, attempt %d of %d",
        request.verb, request.kind, exc, state.attempt_number + 1, attempts,
    )
