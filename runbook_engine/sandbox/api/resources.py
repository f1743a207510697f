"""The verbs on one kind's objects: get, list, create, update, patch (incl. server-side apply),
delete and deletecollection, plus the ``status``, ``scale`` and ``log`` subresources.

Every write honours ``dryRun=All`` (validated and computed, never stored) and records field
ownership in ``metadata.managedFields``. Read-modify-write verbs (patch, apply, scale) retry on a
concurrent change, as the real server's guaranteed update does.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runbook_engine.errors import ClusterError, UserInputError
from runbook_engine.kube import merge
from runbook_engine.kube.cluster import PatchType, Propagation
from runbook_engine.kube.refs import KindInfo
from runbook_engine.kube.selectors import parse_selector
from runbook_engine.sandbox.api import patching
from runbook_engine.sandbox.api.fields import parse_field_selector
from runbook_engine.sandbox.api.gc import GarbageCollector
from runbook_engine.sandbox.api.routing import Query, Route
from runbook_engine.sandbox.api.status import (
    ApiError,
    Cause,
    bad_request,
    from_cluster_error,
    invalid,
    not_found,
    success,
)
from runbook_engine.sandbox.store import Store, json_copy, now_rfc3339

Obj = dict[str, Any]
_RETRIES = 8
_SCALE_KINDS = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


@dataclass(frozen=True)
class WriteContext:
    """What every write request carries besides its body."""

    query: Query
    manager: str  # the field manager: ``fieldManager``, else the User-Agent's product name
    content_type: str


class ResourceApi:
    """The verbs, over one store."""

    def __init__(self, store: Store, gc: GarbageCollector) -> None:
        self.store = store
        self.gc = gc

    # -- reads ---------------------------------------------------------------------------------
    def get(self, route: Route) -> Obj:
        obj = self.store.get(route.info.api_version, route.info.kind, route.namespace or "", str(route.name))
        if obj is None:
            raise not_found(route.info, str(route.name))
        return obj

    def matcher(self, route: Route, query: Query) -> Callable[[Mapping[str, Any]], bool]:
        """The label and field selectors of a list or watch request, as one predicate."""
        try:
            labels = parse_selector(query.get("labelSelector"))
        except UserInputError as exc:
            raise bad_request(f"unable to parse requirement: {exc.message}") from exc
        fields = parse_field_selector(query.get("fieldSelector"), route.info.kind)
        return lambda obj: labels.matches((obj.get("metadata") or {}).get("labels")) and fields(obj)

    def list(self, route: Route, query: Query) -> Obj:
        """The list response; its ``items`` are the stored objects, to be serialised, never changed."""
        match = self.matcher(route, query)  # parsed even when unused: a malformed selector is a 400
        with self.store.lock:  # the stored objects themselves: read-only, rendered once by the caller
            items = self.store.scan_sorted(route.info.api_version, route.info.kind, route.namespace)
            rv = self.store.resource_version
        if query.get("labelSelector") or query.get("fieldSelector"):
            items = [o for o in items if match(o)]
        meta: Obj = {"resourceVersion": str(rv)}
        limit, offset = query.integer("limit"), _continue_offset(query.get("continue"))
        if offset:
            items = items[offset:]
        if limit and len(items) > limit:
            meta["continue"] = str(offset + limit)
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"kind": route.info.list_kind, "apiVersion": route.info.api_version, "metadata": meta, "items": items}

    # -- create --------------------------------------------------------------------------------
    def create(self, route: Route, body: Any, ctx: WriteContext) -> Obj:
        obj = self._checked_body(route, body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = str(meta["generateName"]) + suffix
        if not meta.get("name"):
            raise invalid(
                route.info, "", [Cause("FieldValueRequired", "Required value: name or generateName is required",
                                       "metadata.name")]
            )
        for server_field in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
            meta.pop(server_field, None)
        self._require_namespace(route)
        _prepare_status(route.info, obj)
        obj = merge.record_update({}, obj, manager=ctx.manager, now=now_rfc3339())
        return self._store_create(route.info, obj, ctx.query.dry_run)

    def _store_create(self, info: KindInfo, obj: Obj, dry_run: bool) -> Obj:
        _canonical(obj)
        try:
            return self.store.create(obj, dry_run=dry_run)
        except ClusterError as exc:
            raise from_cluster_error(exc, info, str(obj["metadata"]["name"])) from exc

    def _require_namespace(self, route: Route) -> None:
        namespace = route.namespace
        if route.info.namespaced and namespace and self.store.peek("v1", "Namespace", "", namespace) is None:
            namespaces = self.store.registry.get("v1", "Namespace")
            raise not_found(namespaces, namespace)

    def _checked_body(self, route: Route, body: Any) -> Obj:
        """The request's object, checked against the URL (kind, version, namespace, name)."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = json_copy(body)
        info = route.info
        if not obj.get("kind") and not obj.get("apiVersion") and patching.is_builtin(info):
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind  # built-ins default from the URL
        if not obj.get("kind"):
            raise bad_request(f"Object 'Kind' is missing in '{_short(body)}'")
        if obj.get("apiVersion") != info.api_version or obj.get("kind") != info.kind:
            raise bad_request(
                f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version "
                f"({info.api_version})" if obj.get("apiVersion") != info.api_version
                else f"the kind in the data ({obj.get('kind')}) does not match the expected kind ({info.kind})"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if info.namespaced:
            if meta.get("namespace") and route.namespace and meta["namespace"] != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = route.namespace or meta.get("namespace")
            if not meta["namespace"]:
                raise bad_request("a namespace must be specified for a namespaced resource")
        else:
            meta.pop("namespace", None)
        if route.name is not None and meta.get("name") not in (None, "", route.name):
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                              f"({route.name})")
        if route.name is not None:
            meta["name"] = route.name
        return obj

    # -- update --------------------------------------------------------------------------------
    def update(self, route: Route, body: Any, ctx: WriteContext) -> Obj:
        if route.subresource == "scale":
            return self._scale_write(route, lambda _scale: body, ctx)
        obj = self._checked_body(route, body)
        live = self.get(route)
        expect = str(obj["metadata"].get("resourceVersion") or "") or None
        new = _merge_subresource(route, live, obj)
        return self._store_update(route, live, new, ctx, expect)

    def _store_update(self, route: Route, live: Obj, new: Obj, ctx: WriteContext, expect_rv: str | None) -> Obj:
        new = merge.record_update(live, new, manager=ctx.manager, now=now_rfc3339())
        _canonical(new)
        try:
            stored = self.store.update(new, expect_rv=expect_rv, dry_run=ctx.query.dry_run)
        except ClusterError as exc:
            raise from_cluster_error(exc, route.info, str(route.name)) from exc
        if not ctx.query.dry_run:
            self.gc.finish_if_released(stored)
        return stored

    # -- patch ---------------------------------------------------------------------------------
    def patch(self, route: Route, body: bytes, ctx: WriteContext) -> tuple[int, Obj]:
        kind = patching.patch_type(ctx.content_type)
        data = patching.decode(body, ctx.content_type)
        if kind is PatchType.APPLY:
            return self._apply(route, data, ctx)
        if route.subresource == "scale":
            return 200, self._scale_write(route, lambda scale: patching.apply_patch(route.info, scale, kind, data), ctx)
        for _ in range(_RETRIES):
            live = self.get(route)
            patched = patching.apply_patch(route.info, live, kind, data)
            wanted_rv = str((patched.get("metadata") or {}).get("resourceVersion") or "")
            precondition = wanted_rv if wanted_rv and wanted_rv != live["metadata"].get("resourceVersion") else None
            new = _merge_subresource(route, live, self._keep_identity(live, patched))
            try:
                expect = precondition or live["metadata"]["resourceVersion"]
                return 200, self._store_update(route, live, new, ctx, expect)
            except ApiError as exc:
                if exc.code != 409 or precondition:
                    raise
        raise from_cluster_error(ClusterError("conflict", status=409, reason="Conflict"), route.info, str(route.name))

    @staticmethod
    def _keep_identity(live: Obj, patched: Obj) -> Obj:
        for key in ("apiVersion", "kind"):
            patched[key] = live[key]
        meta = patched.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp"):
            if key in live["metadata"]:
                meta[key] = live["metadata"][key]
        meta["resourceVersion"] = live["metadata"]["resourceVersion"]
        return patched

    def _apply(self, route: Route, data: Any, ctx: WriteContext) -> tuple[int, Obj]:
        manager = ctx.query.get("fieldManager")
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requests must include the fieldManager parameter")
        if route.subresource is not None:
            raise ApiError(405, f"server-side apply is not supported on the {route.subresource} subresource")
        config = self._checked_body(route, data)
        force = ctx.query.flag("force")
        for _ in range(_RETRIES):
            live = self.store.get(route.info.api_version, route.info.kind, route.namespace or "", str(route.name))
            result = patching.server_side_apply(route.info, live, config, manager, force, now_rfc3339())
            if live is None:
                self._require_namespace(route)
                _prepare_status(route.info, result)
                return 201, self._store_create(route.info, result, ctx.query.dry_run)
            result = _merge_subresource(route, live, self._keep_identity(live, result))
            _canonical(result)
            try:
                expect = live["metadata"]["resourceVersion"]
                stored = self.store.update(result, expect_rv=expect, dry_run=ctx.query.dry_run)
            except ClusterError as exc:
                if exc.reason == "Conflict":
                    continue
                raise from_cluster_error(exc, route.info, str(route.name)) from exc
            return 200, stored
        raise from_cluster_error(ClusterError("conflict", status=409, reason="Conflict"), route.info, str(route.name))

    # -- scale ---------------------------------------------------------------------------------
    def scale(self, route: Route) -> Obj:
        if route.info.kind not in _SCALE_KINDS:
            raise not_found(route.info, str(route.name))
        return _to_scale(self.get(route))

    def _scale_write(self, route: Route, change: Callable[[Obj], Any], ctx: WriteContext) -> Obj:
        if route.info.kind not in _SCALE_KINDS:
            raise not_found(route.info, str(route.name))
        for _ in range(_RETRIES):
            live = self.get(route)
            wanted = change(_to_scale(live))
            replicas = (wanted.get("spec") or {}).get("replicas") if isinstance(wanted, dict) else None
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(route.info, str(route.name),
                              [Cause("FieldValueInvalid", "must be greater than or equal to 0", "spec.replicas")])
            new = json_copy(live)
            new.setdefault("spec", {})["replicas"] = replicas
            try:
                main = Route(route.info, route.namespace, route.name, None)
                return _to_scale(self._store_update(main, live, new, ctx, live["metadata"]["resourceVersion"]))
            except ApiError as exc:
                if exc.code != 409:
                    raise
        raise from_cluster_error(ClusterError("conflict", status=409, reason="Conflict"), route.info, str(route.name))

    # -- delete --------------------------------------------------------------------------------
    def delete(self, route: Route, options: Mapping[str, Any], query: Query) -> Obj:
        live = self.get(route)
        _check_preconditions(route, live, options)
        propagation = _propagation(options, query)
        if query.dry_run or options.get("dryRun") == ["All"]:
            return success(route.info, str(route.name), str(live["metadata"].get("uid", "")))
        try:
            last, gone = self.gc.delete(live, propagation)
        except ClusterError as exc:
            raise from_cluster_error(exc, route.info, str(route.name)) from exc
        if propagation is Propagation.FOREGROUND and not gone:
            return last
        if propagation is Propagation.FOREGROUND or not gone:
            meta = last["metadata"]
            meta.setdefault("deletionTimestamp", now_rfc3339())
            if propagation is Propagation.FOREGROUND:
                meta["finalizers"] = ["foregroundDeletion", *(meta.get("finalizers") or [])]
            return last
        return success(route.info, str(route.name), str(last["metadata"].get("uid", "")))

    def delete_collection(self, route: Route, options: Mapping[str, Any], query: Query) -> Obj:
        listed = self.list(route, query)
        if query.dry_run:
            return listed
        propagation = _propagation(options, query)
        for obj in listed["items"]:
            current = self.store.get(route.info.api_version, route.info.kind, route.namespace or "",
                                     obj["metadata"]["name"])
            if current is not None:
                self.gc.delete(current, propagation)
        return listed

    # -- pod logs ------------------------------------------------------------------------------
    def log(self, route: Route, query: Query) -> str:
        pod = self.get(route)
        spec = pod.get("spec") or {}
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        init_names = [str(c.get("name")) for c in spec.get("initContainers") or []]
        container = query.get("container") or (names[0] if len(names) == 1 else "")
        if not container:
            raise bad_request(
                f"a container name must be specified for pod {route.name}, choose one of: [{' '.join(names)}]"
                + (f" or one of the init containers: [{' '.join(init_names)}]" if init_names else "")
            )
        if container not in names + init_names:
            raise bad_request(f"container {container} is not valid for pod {route.name}")
        text = self.store.get_pod_log(route.namespace or "", str(route.name), container)
        tail = query.integer("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text


# -- helpers -----------------------------------------------------------------------------------


def _short(body: Any) -> str:
    text = json.dumps(body, separators=(",", ":"))
    return text if len(text) < 200 else text[:200] + "..."


def _continue_offset(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise ApiError(410, "the provided continue parameter is too old to display a consistent list result",
                       "Expired")
    return int(token)


def _canonical(obj: Obj) -> None:
    """What the real server stores: no empty metadata maps or lists; a Secret's ``stringData``
    folded into ``data`` (base64)."""
    meta = obj.get("metadata") or {}
    for key in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
        if key in meta and not meta[key]:
            del meta[key]
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and "stringData" in obj:
        data = dict(obj.get("data") or {})
        for name, value in (obj.pop("stringData") or {}).items():
            data[name] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def _has_status_subresource(info: KindInfo) -> bool:
    return "status" in info.subresources


def _merge_subresource(route: Route, live: Obj, new: Obj) -> Obj:
    """Writes to the main resource keep the live status; writes to ``/status`` change only status."""
    if not _has_status_subresource(route.info):
        return new
    if route.subresource == "status":
        out = json_copy(live)
        out["status"] = new.get("status", {})
        out["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion", live["metadata"].get(
            "resourceVersion"))
        return out
    if "status" in live:
        new["status"] = json_copy(live["status"])
    else:
        new.pop("status", None)
    return new


def _prepare_status(info: KindInfo, obj: Obj) -> None:
    """On create the server owns status: it is reset for kinds that have a status subresource."""
    if info.kind == "CustomResourceDefinition":
        spec = obj.get("spec") or {}
        stored = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
        obj["status"] = {
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "lastTransitionTime": now_rfc3339()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "lastTransitionTime": now_rfc3339()},
            ],
            "acceptedNames": spec.get("names") or {},
            "storedVersions": stored,
        }
    elif info.kind == "Pod" and info.api_version == "v1":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif _has_status_subresource(info):
        obj.pop("status", None)


def _to_scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    labels = selector.get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in labels.items()),
        },
    }


def _propagation(options: Mapping[str, Any], query: Query) -> Propagation:
    raw = query.get("propagationPolicy") or options.get("propagationPolicy")
    if raw is None and options.get("orphanDependents") is True:
        return Propagation.ORPHAN
    if raw is None:
        return Propagation.BACKGROUND
    try:
        return Propagation(str(raw))
    except ValueError as exc:
        raise bad_request(f"propagationPolicy: Unsupported value: {raw!r}: supported values: "
                          '"Background", "Foreground", "Orphan"') from exc


def _check_preconditions(route: Route, live: Obj, options: Mapping[str, Any]) -> None:
    pre = options.get("preconditions") or {}
    meta = live["metadata"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise ApiError(409, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                       f"{meta.get('uid')}", "Conflict")
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
        raise from_cluster_error(ClusterError("conflict", status=409, reason="Conflict"), route.info, str(route.name))
