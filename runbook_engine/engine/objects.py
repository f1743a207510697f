"""Object comparisons the engine needs to execute, reconcile and undo changes exactly.

Server-managed fields (``resourceVersion``, ``uid``, ``managedFields``, ``status``…) are ignored
when deciding whether a live object "is" a journaled image, and are stripped from a pre-image
before it is applied back. ``merge_patch_between`` computes the RFC 7386 merge patch that turns
one object into another, which rollback uses to remove fields a phase added.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from runbook_engine.kube.merge import SERVER_METADATA, clone
from runbook_engine.kube.redact import LAST_APPLIED

Obj = dict[str, Any]


def strip_server_fields(obj: Mapping[str, Any]) -> Obj:
    """A copy of ``obj`` without status and server-managed metadata: what a user would apply.

    Only what is kept is copied (``managedFields`` and ``status`` are often most of a live object)."""
    out: Obj = {}
    for key, value in obj.items():
        if key == "metadata":
            out[key] = _user_metadata(value or {})
        elif key != "status":
            out[key] = clone(value)
    if "metadata" not in out:
        out["metadata"] = {}
    return out


def _user_metadata(meta: Mapping[str, Any]) -> Obj:
    kept = {k: clone(v) for k, v in meta.items() if k not in SERVER_METADATA}
    annotations = {k: v for k, v in (kept.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    return kept


def contains(whole: Any, part: Any) -> bool:
    """True when every field set in ``part`` has the same value in ``whole`` (lists compared whole)."""
    if isinstance(part, Mapping):
        if not isinstance(whole, Mapping):
            return False
        return all(key in whole and contains(whole[key], value) for key, value in part.items())
    return bool(whole == part)


def same_object(live: Mapping[str, Any] | None, image: Mapping[str, Any] | None) -> bool:
    """True when ``live`` equals ``image`` ignoring server-managed fields (None equals None)."""
    if live is None or image is None:
        return live is None and image is None
    return strip_server_fields(live) == strip_server_fields(image)


def merge_patch_between(current: Mapping[str, Any], target: Mapping[str, Any]) -> Obj:
    """The merge patch that turns ``current`` into ``target`` (keys missing in target become null)."""
    patch: Obj = {}
    for key in current.keys() - target.keys():
        patch[key] = None
    for key, value in target.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch_between(old, value)
            if sub:
                patch[key] = sub
        elif key not in current or old != value:
            patch[key] = copy.deepcopy(value)
    return patch


def fingerprint(values: Any) -> str:
    """A stable SHA-256 of any JSON-serialisable value (keys sorted)."""
    text = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
