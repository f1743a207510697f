"""Patch bodies by content type, and server-side apply conflicts reported as the real server does.

The merge semantics themselves live in ``runbook_engine.kube.merge`` (shared with ``MemoryCluster``);
this module decodes request bodies, picks the patch function, and turns field-ownership conflicts
into a 409 whose causes name the conflicting manager and field (kubectl prints them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from runbook_engine.errors import ClusterError
from runbook_engine.kube import merge
from runbook_engine.kube.cluster import PatchType
from runbook_engine.kube.refs import KindInfo
from runbook_engine.sandbox.api import protobuf
from runbook_engine.sandbox.api.status import ApiError, Cause, Reason, bad_request, invalid

Obj = dict[str, Any]

#: Groups whose kinds are built into the API server: strategic merge patch works only for them.
_BUILTIN_GROUPS = frozenset(
    {"", "apps", "batch", "coordination.k8s.io", "apiextensions.k8s.io", "admissionregistration.k8s.io",
     "networking.k8s.io", "autoscaling", "policy", "rbac.authorization.k8s.io"}
)


def is_builtin(info: KindInfo) -> bool:
    """Whether a kind is built into the API server (typed: defaults, strategic merge) or a custom resource."""
    return info.group in _BUILTIN_GROUPS


def decode(body: bytes, content_type: str) -> Any:
    """A request body as data: YAML for apply patches and ``application/yaml``, JSON otherwise."""
    if "protobuf" in content_type:
        return protobuf.decode_object(body)
    if "cbor" in content_type:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format ({content_type}) - accepted media types include: "
            "application/json, application/yaml",
            Reason.UNSUPPORTED_MEDIA_TYPE,
        )
    if not body.strip():
        raise bad_request("the request body is empty")
    try:
        if "yaml" in content_type:
            return yaml.safe_load(body.decode())
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as exc:
        fmt = "YAML" if "yaml" in content_type else "JSON"
        raise bad_request(f"the request body is not valid {fmt}: {exc}") from exc


def patch_type(content_type: str) -> PatchType:
    media = content_type.split(";")[0].strip().lower()
    for kind in PatchType:
        if kind.value == media:
            return kind
    raise ApiError(
        415,
        f'the body of the request was in an unknown format - accepted media types include: '
        f'{", ".join(t.value for t in PatchType)}',
        Reason.UNSUPPORTED_MEDIA_TYPE,
    )


def apply_patch(info: KindInfo, live: Obj, kind: PatchType, patch: Any) -> Obj:
    """``live`` with a merge, JSON or strategic merge patch applied."""
    try:
        if kind is PatchType.MERGE:
            if not isinstance(patch, Mapping):
                raise bad_request("a merge patch must be a JSON object")
            result = merge.merge_patch(live, patch)
        elif kind is PatchType.JSON:
            result = merge.json_patch(live, patch)
        else:
            if not is_builtin(info):
                raise ApiError(
                    415,
                    f"strategic merge patch is not supported for {info.kind}.{info.group}: use a merge patch, "
                    "a JSON patch or server-side apply",
                    Reason.UNSUPPORTED_MEDIA_TYPE,
                )
            if not isinstance(patch, Mapping):
                raise bad_request("a strategic merge patch must be a JSON object")
            result = merge.strategic_merge(live, patch)
    except ClusterError as exc:
        raise invalid(info, _name(live), [Cause("FieldValueInvalid", exc.message, "patch")]) from exc
    if not isinstance(result, dict):
        raise invalid(info, _name(live), [Cause("FieldValueInvalid", "the patched object is not an object")])
    return result


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def field_path(path: tuple[str, ...]) -> str:
    """A FieldsV1 path as the API server prints it: ``.spec.containers[name="app"].image``."""
    out = ""
    for element in path:
        if element.startswith("f:"):
            out += "." + element[2:]
        elif element.startswith("k:"):
            key = json.loads(element[2:])
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        elif element.startswith("v:"):
            out += f"[={element[2:]}]"
        elif element.startswith("i:"):
            out += f"[{element[2:]}]"
    return out


def apply_conflicts(live: Obj, config: Mapping[str, Any], manager: str) -> list[Cause]:
    """Fields ``config`` sets to a new value that another manager owns."""
    applied = merge.leaf_values(merge.to_apply_config(config))
    causes: list[Cause] = []
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        owned = merge.from_fields_v1(entry.get("fieldsV1") or {})
        using = entry.get("apiVersion", live.get("apiVersion"))
        for path in sorted(owned & applied.keys()):
            if path[-1] != "." and merge.value_at(live, path) != applied[path]:
                message = f'conflict with "{entry.get("manager")}" using {using}'
                causes.append(Cause("FieldManagerConflict", message, field_path(path)))
    return causes


def conflict_error(info: KindInfo, name: str, causes: list[Cause]) -> ApiError:
    count = len(causes)
    noun = "conflict" if count == 1 else "conflicts"
    if count == 1:
        message = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        lines = "\n".join(f"- {c.message}: {c.field}" for c in causes)
        message = f"Apply failed with {count} {noun}:\n{lines}"
    details: Obj = {"name": name, "kind": info.plural, "causes": [c.body() for c in causes]}
    if info.group:
        details["group"] = info.group
    return ApiError(409, message, Reason.CONFLICT, details)


def server_side_apply(info: KindInfo, live: Obj | None, config: Obj, manager: str, force: bool, now: str) -> Obj:
    """The object after ``manager`` applies ``config``; raises a 409 listing conflicts unless ``force``."""
    if live is not None and not force:
        causes = apply_conflicts(live, config, manager)
        if causes:
            raise conflict_error(info, _name(config), causes)
    try:
        return merge.server_side_apply(live, config, manager=manager, force=True, now=now)
    except ClusterError as exc:
        raise invalid(info, _name(config), [Cause("FieldValueInvalid", exc.message)]) from exc
