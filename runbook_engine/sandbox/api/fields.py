"""Field selectors (``fieldSelector=metadata.name=web,status.phase!=Running``) as the API server
supports them: equality and inequality on a small set of fields per kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runbook_engine.sandbox.api.status import bad_request

Obj = dict[str, Any]

_COMMON = ("metadata.name", "metadata.namespace")
#: Extra fields each kind can be selected on (the real server's field label conversions).
_BY_KIND: dict[str, tuple[str, ...]] = {
    "Pod": ("status.phase", "spec.nodeName", "spec.serviceAccountName", "status.podIP", "spec.restartPolicy"),
    "Event": ("involvedObject.kind", "involvedObject.name", "involvedObject.namespace", "involvedObject.uid",
              "reason", "type"),
    "Secret": ("type",),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
}


def _value(obj: Mapping[str, Any], dotted: str) -> str:
    node: Any = obj
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (_value(obj, self.field) == self.value) == self.equal


def parse_field_selector(text: str, kind: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for the selector; unsupported fields are a 400, as on the real server."""
    reqs = [_parse_term(term.strip(), kind) for term in text.split(",") if term.strip()]
    return lambda obj: all(r.matches(obj) for r in reqs)


def _parse_term(term: str, kind: str) -> FieldRequirement:
    for op, equal in (("!=", False), ("==", True), ("=", True)):
        if op in term:
            name, _, value = term.partition(op)
            name = name.strip()
            if name not in _COMMON + _BY_KIND.get(kind, ()):
                raise bad_request(f'field label not supported: {name}')
            return FieldRequirement(name, equal, value.strip())
    raise bad_request(f"invalid field selector: {term!r}")
