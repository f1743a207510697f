"""Patch and apply semantics on plain manifests, shared by ``MemoryCluster`` and the sandbox API server.

- ``merge_patch``: JSON merge patch (RFC 7386).
- ``json_patch``: JSON patch (RFC 6902), with JSON pointers (RFC 6901).
- ``strategic_merge``: Kubernetes strategic merge patch: lists of maps with a merge key
  (containers, env, ports, volumes, …) merged item by item, ``null`` deletes a key, ``$patch``
  directives (``delete``, ``replace``) honoured, other ``$`` directives ignored.
- ``server_side_apply``: server-side apply with field ownership recorded in
  ``metadata.managedFields`` (``FieldsV1``): the applied configuration is merged into the live
  object, fields the same manager applied before and no longer applies are removed, and a field
  another manager owns with a different value is a conflict unless ``force``.
- ``record_update``: ownership bookkeeping for a non-apply write (patch, update).
- ``fold_string_data``: a Secret's ``stringData`` stored as ``data``, as the API server does.

Objects are never modified in place; every function returns a new value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

from runbook_engine.errors import ConflictError, InvalidObjectError

Obj = dict[str, Any]
Path = tuple[str, ...]  # FieldsV1 path elements: "f:<field>", "k:<json key>", "." (the list item itself)

#: Fields whose lists are keyed by these fields (first candidate present in every item wins).
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "conditions": ("type",),
    "hostAliases": ("ip",),
    "ownerReferences": ("uid",),
}

#: Metadata the server owns; never part of an apply configuration's field set.
SERVER_METADATA: frozenset[str] = frozenset(
    {"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
     "deletionTimestamp", "deletionGracePeriodSeconds"}
)

_MISSING = object()
_T = TypeVar("_T")


def clone(value: _T) -> _T:
    """A deep copy of a JSON-like value (dicts, lists, scalars); about twice as fast as ``copy.deepcopy``."""
    return cast(_T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


# -- keyed lists -------------------------------------------------------------------------------


def list_key(field_name: str, items: list[Any]) -> str | None:
    """The merge key of a list of maps, or None when the list is atomic (replaced as a whole)."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for candidate in _LIST_KEYS.get(field_name, ("name",)):
        if all(candidate in i for i in items if not _is_directive_item(i)):
            return candidate
    return None


def _is_directive_item(item: Mapping[str, Any]) -> bool:
    return "$patch" in item and len([k for k in item if not k.startswith("$")]) == 0


def _find(items: list[Any], key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get(key) == value:
            return i
    return -1


# -- RFC 7386 merge patch ------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch: maps merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    out: Obj = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- RFC 6902 JSON patch -----------------------------------------------------------------------


def _invalid(message: str) -> InvalidObjectError:
    return InvalidObjectError(message, status=422, reason="Invalid", hint="fix the JSON patch operations")


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise _invalid(f"JSON pointer {text!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _invalid(f"invalid array index {token!r}")
    idx = int(token)
    limit = len(container) + (1 if allow_end else 0)
    if idx >= limit:
        raise _invalid(f"array index {idx} out of range")
    return idx


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise _invalid(f"path element {token!r} does not exist")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, allow_end=False)]
        else:
            raise _invalid(f"cannot descend into a scalar at {token!r}")
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return clone(value)
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = clone(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], allow_end=True), clone(value))
    else:
        raise _invalid("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise _invalid("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise _invalid(f"path element {tokens[-1]!r} does not exist")
        return doc, parent.pop(tokens[-1])
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, tokens[-1], allow_end=False))
    raise _invalid("cannot remove from a scalar")


def _json_op(doc: Any, op: Mapping[str, Any]) -> Any:
    name = op.get("op")
    tokens = _pointer(str(op.get("path", "")))
    if name == "add":
        return _add(doc, tokens, op.get("value"))
    if name == "remove":
        return _remove(doc, tokens)[0]
    if name == "replace":
        _resolve(doc, tokens)
        doc, _ = _remove(doc, tokens) if tokens else (doc, None)
        return _add(doc, tokens, op.get("value"))
    if name in ("move", "copy"):
        source = _pointer(str(op.get("from", "")))
        if name == "move":
            if tokens[: len(source)] == source and tokens != source:
                raise _invalid("cannot move a value into one of its children")
            doc, value = _remove(doc, source)
        else:
            value = clone(_resolve(doc, source))
        return _add(doc, tokens, value)
    if name == "test":
        if _resolve(doc, tokens) != op.get("value"):
            raise _invalid(f"test failed at {op.get('path')!r}")
        return doc
    raise _invalid(f"unknown JSON patch operation {name!r}")


def json_patch(target: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations atomically: either all apply or an ``InvalidObjectError`` is raised."""
    if not isinstance(operations, list):
        raise _invalid("a JSON patch must be a list of operations")
    doc = clone(target)
    for op in operations:
        if not isinstance(op, dict):
            raise _invalid("each JSON patch operation must be an object")
        doc = _json_op(doc, op)
    return doc


# -- strategic merge patch ---------------------------------------------------------------------


def strategic_merge(target: Any, patch: Any, field_name: str = "") -> Any:
    """Apply a strategic merge patch (see module docstring)."""
    if isinstance(patch, dict):
        return _strategic_map(target, patch)
    if isinstance(patch, list):
        return _strategic_list(target, patch, field_name)
    return clone(patch)


def _strategic_map(target: Any, patch: Mapping[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _MISSING
    out: Obj = clone(target) if isinstance(target, dict) and directive != "replace" else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
            continue
        merged = strategic_merge(out.get(key), value, key)
        if merged is _MISSING:
            out.pop(key, None)
        else:
            out[key] = merged
    return out


def _strategic_list(target: Any, patch: list[Any], field_name: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" and _is_directive_item(i) for i in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and _is_directive_item(i))]
    key = list_key(field_name, patch)
    if key is None or not isinstance(target, list) or list_key(field_name, target) not in (key, None):
        return [clone(i) for i in patch]
    out = clone(target)
    for item in patch:
        idx = _find(out, key, item.get(key))
        if item.get("$patch") == "delete":
            if idx >= 0:
                out.pop(idx)
        elif idx >= 0:
            out[idx] = _strategic_map(out[idx], item)
        else:
            out.append(_strategic_map({}, item))
    return out


# -- field sets (FieldsV1) -----------------------------------------------------------------------


def _item_element(item: Mapping[str, Any], key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"), sort_keys=True)


def _flatten(value: Any, prefix: Path, field_name: str) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(v, (*prefix, f"f:{k}"), k)
        return
    key = list_key(field_name, value) if isinstance(value, list) else None
    if key is None:
        yield prefix, value
        return
    for item in value:
        item_path = (*prefix, _item_element(item, key))
        yield (*item_path, "."), None
        for k, v in item.items():
            yield from _flatten(v, (*item_path, f"f:{k}"), k)


def leaf_values(obj: Mapping[str, Any], *, include_status: bool = False) -> dict[Path, Any]:
    """Every user-owned leaf of a manifest, by FieldsV1 path (identity and server metadata excluded)."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not include_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in SERVER_METADATA and k not in ("name", "namespace")}
            out.update(_flatten(meta, ("f:metadata",), "metadata") if meta else {})
        else:
            out.update(_flatten(value, (f"f:{key}",), key))
    return out


def to_fields_v1(paths: set[Path]) -> Obj:
    """Render a set of paths as the nested ``fieldsV1`` map the API server stores."""
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return root


def from_fields_v1(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The leaf paths of a ``fieldsV1`` map."""
    out: set[Path] = set()
    for element, child in fields.items():
        path = (*prefix, element)
        if isinstance(child, dict) and child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


# -- navigating by path ------------------------------------------------------------------------


def _step(node: Any, element: str) -> Any:
    if element.startswith("f:") and isinstance(node, dict):
        return node.get(element[2:], _MISSING)
    if element.startswith("k:") and isinstance(node, list):
        ((key, value),) = json.loads(element[2:]).items()
        idx = _find(node, key, value)
        return node[idx] if idx >= 0 else _MISSING
    return _MISSING


def value_at(obj: Any, path: Path) -> Any:
    """The value at a path, or a sentinel that equals nothing in a manifest."""
    node = obj
    for element in path:
        if element == ".":
            return None if node is not _MISSING else _MISSING
        node = _step(node, element)
        if node is _MISSING:
            return _MISSING
    return node


def _delete_path(obj: Obj, path: Path) -> None:
    """Remove the field (or keyed list item, for a path ending in ".") and prune emptied parents."""
    if path and path[-1] == ".":
        path = path[:-1]
    chain: list[Any] = [obj]
    for element in path[:-1]:
        nxt = _step(chain[-1], element)
        if nxt is _MISSING:
            return
        chain.append(nxt)
    if not _remove_element(chain[-1], path[-1]):
        return
    for depth in range(len(chain) - 1, 1, -1):  # never prune the top-level field itself (spec, metadata)
        if chain[depth] in ({}, []):
            _remove_element(chain[depth - 1], path[depth - 1])


def _remove_element(node: Any, element: str) -> bool:
    if element.startswith("f:") and isinstance(node, dict) and element[2:] in node:
        del node[element[2:]]
        return True
    if element.startswith("k:") and isinstance(node, list):
        ((key, value),) = json.loads(element[2:]).items()
        idx = _find(node, key, value)
        if idx >= 0:
            node.pop(idx)
            return True
    return False


# -- server-side apply ---------------------------------------------------------------------------


def apply_merge(live: Any, config: Any, field_name: str = "") -> Any:
    """Merge an apply configuration into a live value: maps recursively, keyed lists by key."""
    if isinstance(config, dict):
        out: Obj = clone(live) if isinstance(live, dict) else {}
        for key, value in config.items():
            out[key] = apply_merge(out.get(key), value, key)
        return out
    if config == [] and isinstance(live, list) and list_key(field_name, live) is not None:
        return clone(live)  # an empty keyed list adds no items; owned items go via ownership
    key = list_key(field_name, config) if isinstance(config, list) else None
    if key is None or not isinstance(live, list) or list_key(field_name, live) not in (key, None):
        return clone(config)
    merged = clone(live)
    for item in config:
        idx = _find(merged, key, item.get(key))
        if idx >= 0:
            merged[idx] = apply_merge(merged[idx], item)
        else:
            merged.append(clone(item))
    return merged


def _entries(obj: Mapping[str, Any]) -> list[Obj]:
    return [dict(e) for e in (obj.get("metadata") or {}).get("managedFields") or []]


def _owned(entry: Mapping[str, Any]) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1") or {})


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], now: str) -> Obj:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }


def _is(entry: Mapping[str, Any], manager: str, operation: str) -> bool:
    return entry.get("manager") == manager and entry.get("operation") == operation


def _conflicts(live: Obj, entries: list[Obj], manager: str, applied: dict[Path, Any]) -> list[str]:
    out: list[str] = []
    for entry in entries:
        if _is(entry, manager, "Apply"):
            continue
        for path in _owned(entry) & applied.keys():
            if path[-1] != "." and value_at(live, path) != applied[path]:
                field = ".".join(e[2:] for e in path)
                out.append(f'conflict with "{entry.get("manager")}" ({entry.get("operation")}): .{field}')
    return sorted(out)


def server_side_apply(live: Obj | None, config: Mapping[str, Any], *, manager: str, force: bool, now: str) -> Obj:
    """The object after applying ``config`` as ``manager`` (see module docstring); ``live`` is unchanged."""
    config = _apply_config(config)
    applied = leaf_values(config)
    if live is None:
        result = clone(config)
        result.setdefault("metadata", {})["managedFields"] = [
            _entry(manager, "Apply", str(config.get("apiVersion")), set(applied), now)
        ]
        return result
    entries = _entries(live)
    conflicts = _conflicts(live, entries, manager, applied)
    if conflicts and not force:
        raise ConflictError(
            "Apply failed with conflicts: " + "; ".join(conflicts),
            status=409,
            reason="Conflict",
            hint="apply with force to take ownership, or stop setting fields another manager owns",
        )
    result = apply_merge(live, config)
    entries = _reassign(entries, manager, applied, live, result)
    result["metadata"]["managedFields"] = entries
    for path in sorted(_orphaned(live, manager, applied), key=_removal_order):
        _delete_path(result, path)
    return _replace_entry(result, manager, "Apply", str(config.get("apiVersion")), set(applied), now)


def _removal_order(path: Path) -> tuple[int, Path]:
    """Whole list items (paths ending in ".") before their fields, so the item is still findable by key."""
    return (len(path) - (1 if path[-1] == "." else 0), path)


def _apply_config(config: Mapping[str, Any]) -> Obj:
    """Drop server metadata from an apply configuration (a live object can be re-applied as-is)."""
    out = clone(dict(config))
    meta = out.get("metadata") or {}
    out["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
    out.pop("status", None)
    return out


def _reassign(entries: list[Obj], manager: str, applied: dict[Path, Any], live: Obj, result: Obj) -> list[Obj]:
    """Forced fields leave other managers when their value changed; shared values stay shared."""
    changed = {p for p in applied if value_at(live, p) != value_at(result, p)}
    out = []
    for entry in entries:
        if not _is(entry, manager, "Apply"):
            entry = {**entry, "fieldsV1": to_fields_v1(_owned(entry) - changed)}
        out.append(entry)
    return out


def _orphaned(live: Obj, manager: str, applied: dict[Path, Any]) -> set[Path]:
    """Fields this manager applied before, does not apply now, and nobody else owns."""
    previous: set[Path] = set()
    others: set[Path] = set()
    for entry in _entries(live):
        (previous if _is(entry, manager, "Apply") else others).update(_owned(entry))
    gone = previous - applied.keys() - others
    return {p for p in gone if not (p[-1] == "." and any(o[: len(p) - 1] == p[:-1] for o in others))}


def _replace_entry(obj: Obj, manager: str, operation: str, api_version: str, paths: set[Path], now: str) -> Obj:
    meta = obj.setdefault("metadata", {})
    kept = [e for e in meta.get("managedFields") or [] if not _is(e, manager, operation)]
    kept = [e for e in kept if e.get("fieldsV1")]
    if paths:
        kept.append(_entry(manager, operation, api_version, paths, now))
    meta["managedFields"] = kept
    return obj


def record_update(before: Obj, after: Obj, *, manager: str, now: str, merge_patch: Any = None) -> Obj:
    """``after`` with ownership of every field a non-apply write changed moved to ``manager``.

    ``merge_patch``, when the write was that RFC 7386 patch, bounds where fields can have changed
    (only under the keys it names), so only those subtrees are compared; managers owning none of
    the changed fields keep their entries untouched."""
    old, new = _changeable_leaves(before, merge_patch), _changeable_leaves(after, merge_patch)
    changed = {p for p, v in new.items() if old.get(p, _MISSING) != v}
    touched = changed | (old.keys() - new.keys())
    # a new top level and metadata: stored objects are replaced on write, never edited in place, so
    # the rest may be shared with ``after``
    result = {**after, "metadata": dict(after.get("metadata") or {})}
    entries = []
    mine: set[Path] = set()
    for entry in _entries(before):
        if _is(entry, manager, "Update"):
            mine = _owned(entry) - (touched - changed)
        elif _owns_any(entry.get("fieldsV1") or {}, touched):
            entries.append({**entry, "fieldsV1": to_fields_v1(_owned(entry) - touched)})
        else:
            entries.append(entry)
    result["metadata"]["managedFields"] = entries
    return _replace_entry(result, manager, "Update", str(after.get("apiVersion")), mine | changed, now)


def _changeable_leaves(obj: Mapping[str, Any], merge_patch: Any) -> dict[Path, Any]:
    """The user-owned leaves of ``obj`` a write can have changed: all, or those under a merge patch's keys."""
    if not isinstance(merge_patch, Mapping):
        return leaf_values(obj)
    scoped = _under(obj, merge_patch)
    return leaf_values(scoped) if isinstance(scoped, dict) else {}


def _under(value: Any, patch: Any) -> Any:
    """The part of ``value`` that ``patch`` names (``_MISSING`` when none of it exists)."""
    if not (isinstance(patch, Mapping) and isinstance(value, dict)) or not value:
        return value
    named = ((key, _under(value[key], sub)) for key, sub in patch.items() if key in value)
    kept = {key: part for key, part in named if part is not _MISSING}
    return kept or _MISSING


def _owns_any(fields: Mapping[str, Any], paths: Iterable[Path]) -> bool:
    """Whether the ``fieldsV1`` map ``fields`` has any of ``paths`` as a leaf."""
    for path in paths:
        node: Any = fields
        for element in path:
            node = node.get(element, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING:
                break
        else:
            if not (isinstance(node, dict) and node):
                return True
    return False


def spec_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether anything but metadata and status differs (the API server then bumps ``generation``)."""

    def body(o: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in o.items() if k not in ("metadata", "status")}

    return body(before) != body(after)


def fold_string_data(obj: Obj) -> Obj:
    """Secret ``stringData`` is write-only: the API server stores it base64-encoded in ``data``.

    Folds in place and returns ``obj``.
    """
    if (obj.get("apiVersion"), obj.get("kind")) != ("v1", "Secret") or "stringData" not in obj:
        return obj
    data = dict(obj.get("data") or {})
    for key, value in (obj.pop("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    obj["data"] = data
    return obj


def to_apply_config(obj: Mapping[str, Any]) -> Obj:
    """A live object as an apply configuration: server metadata and status dropped."""
    return _apply_config(obj)
