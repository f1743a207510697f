"""Discovery documents built from the kind registry: ``/version``, ``/api``, ``/apis``, group-version
resource lists, the aggregated form kubectl asks for first, and the OpenAPI v3 index.

The OpenAPI documents are deliberately small: for every kind they declare the PATCH operation and
its ``fieldValidation`` parameter, which is what kubectl reads to leave validation to the server.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from typing import Any

from runbook_engine.kube.refs import KindInfo, KindRegistry

Obj = dict[str, Any]

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
SERVER_VERSION: Obj = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_SUBRESOURCE_VERBS = ("get", "patch", "update")
#: Built-in kinds in the ``all`` category (what ``kubectl get all`` lists).
_ALL_CATEGORY = frozenset(
    {("v1", "Pod"), ("v1", "Service"), ("apps/v1", "Deployment"), ("apps/v1", "ReplicaSet"),
     ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("batch/v1", "Job"), ("batch/v1", "CronJob")}
)


def categories(info: KindInfo) -> list[str]:
    extra = ["all"] if (info.api_version, info.kind) in _ALL_CATEGORY and "all" not in info.categories else []
    return [*info.categories, *extra]
_SCALE_KINDS = frozenset({("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "ReplicaSet")})


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version order: GA before beta before alpha, higher numbers first (sort ascending)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))


def subresources(info: KindInfo) -> list[str]:
    """The subresources served for a kind."""
    subs = [s for s in info.subresources if s in ("status", "log")]
    if (info.api_version, info.kind) in _SCALE_KINDS:
        subs.append("scale")
    return subs


def _groups(registry: KindRegistry) -> dict[str, dict[str, list[KindInfo]]]:
    out: dict[str, dict[str, list[KindInfo]]] = defaultdict(lambda: defaultdict(list))
    for info in registry:
        out[info.group][info.version].append(info)
    return out


def _sorted_versions(versions: dict[str, list[KindInfo]]) -> list[str]:
    return sorted(versions, key=version_priority)


def core_versions(address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def group_list(registry: KindRegistry) -> Obj:
    groups = []
    for name, versions in sorted(_groups(registry).items()):
        if not name:
            continue
        ordered = _sorted_versions(versions)
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered]
        groups.append({"name": name, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: KindRegistry, name: str) -> Obj | None:
    for entry in group_list(registry)["groups"]:
        if entry["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def _resource(info: KindInfo) -> Obj:
    out: Obj = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        out["shortNames"] = list(info.short_names)
    if categories(info):
        out["categories"] = categories(info)
    out["storageVersionHash"] = hashlib.sha256(info.api_version.encode() + info.kind.encode()).hexdigest()[:12]
    return out


def _subresource(info: KindInfo, sub: str) -> Obj:
    out: Obj = {"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced}
    if sub == "scale":
        out.update({"group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": list(_SUBRESOURCE_VERBS)})
    elif sub == "log":
        out.update({"kind": "Pod", "verbs": ["get"]})
    else:
        out.update({"kind": info.kind, "verbs": list(_SUBRESOURCE_VERBS)})
    return out


def resource_list(registry: KindRegistry, group_name: str, version: str) -> Obj | None:
    kinds = _groups(registry).get(group_name, {}).get(version)
    if not kinds:
        return None
    resources: list[Obj] = []
    for info in sorted(kinds, key=lambda i: i.plural):
        resources.append(_resource(info))
        resources.extend(_subresource(info, sub) for sub in subresources(info))
    gv = f"{group_name}/{version}" if group_name else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


# -- aggregated discovery (apidiscovery.k8s.io/v2) -------------------------------------------------


def _aggregated_resource(info: KindInfo) -> Obj:
    out: Obj = {
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        out["shortNames"] = list(info.short_names)
    if categories(info):
        out["categories"] = categories(info)
    subs = []
    for sub in subresources(info):
        kind = {"scale": ("autoscaling", "v1", "Scale")}.get(sub, (info.group, info.version, info.kind))
        verbs = ["get"] if sub == "log" else list(_SUBRESOURCE_VERBS)
        response_kind = dict(zip(("group", "version", "kind"), kind, strict=True))
        subs.append({"subresource": sub, "responseKind": response_kind, "verbs": verbs})
    if subs:
        out["subresources"] = subs
    return out


def aggregated(registry: KindRegistry, *, core: bool) -> Obj:
    """The ``APIGroupDiscoveryList`` for ``/api`` (core) or ``/apis`` (every named group)."""
    items = []
    for name, versions in sorted(_groups(registry).items()):
        if bool(name) == core:
            continue
        entries = [
            {
                "version": v,
                "resources": [_aggregated_resource(i) for i in sorted(versions[v], key=lambda i: i.plural)],
                "freshness": "Current",
            }
            for v in _sorted_versions(versions)
        ]
        items.append({"metadata": {"name": name, "creationTimestamp": None}, "versions": entries})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def wants_aggregated(accept: str) -> bool:
    """Whether the client lists aggregated discovery among acceptable types (kubectl does, first)."""
    return "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept.replace(" ", "") + ";"


# -- OpenAPI v3 ------------------------------------------------------------------------------------


def _gv_path(group_name: str, version: str) -> str:
    return f"api/{version}" if not group_name else f"apis/{group_name}/{version}"


def openapi_index(registry: KindRegistry) -> Obj:
    paths = {}
    for group_name, versions in _groups(registry).items():
        for version in versions:
            key = _gv_path(group_name, version)
            doc_hash = hashlib.sha256(repr(sorted(i.kind for i in versions[version])).encode()).hexdigest()[:16]
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={doc_hash.upper()}"}
    return {"paths": paths}


def _patch_operation(info: KindInfo) -> Obj:
    return {
        "operationId": f"patch{info.kind}",
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
    }


def openapi_group_version(registry: KindRegistry, group_name: str, version: str) -> Obj | None:
    kinds = _groups(registry).get(group_name, {}).get(version)
    if not kinds:
        return None
    paths: Obj = {}
    for info in kinds:
        ns = "namespaces/{namespace}/" if info.namespaced else ""
        path = f"/{_gv_path(group_name, version)}/{ns}{info.plural}/{{name}}"
        paths[path] = {"patch": _patch_operation(info)}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
