"""Request paths and query strings, parsed into what the handlers act on.

``/api/v1/namespaces/sre/pods/web-1/log`` becomes a ``Route`` naming the Pod kind, namespace
``sre``, object ``web-1`` and subresource ``log``. Paths that name no served kind raise a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs

from runbook_engine.kube.refs import KindInfo, KindRegistry
from runbook_engine.sandbox.api.status import ApiError, bad_request, no_route


class Verb(StrEnum):
    GET = "get"
    LIST = "list"
    WATCH = "watch"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    DELETECOLLECTION = "deletecollection"


@dataclass(frozen=True)
class Route:
    """One resource request: the kind, and the namespace/name/subresource the path names."""

    info: KindInfo
    namespace: str | None
    name: str | None
    subresource: str | None

    def verb(self, method: str, watch: bool) -> Verb:
        """The Kubernetes verb of an HTTP method on this path (as audit logs and RBAC name it)."""
        if method == "GET":
            if self.name is not None:
                return Verb.GET
            return Verb.WATCH if watch else Verb.LIST
        by_method = {"POST": Verb.CREATE, "PUT": Verb.UPDATE, "PATCH": Verb.PATCH}
        if method in by_method:
            return by_method[method]
        if method == "DELETE":
            return Verb.DELETE if self.name is not None else Verb.DELETECOLLECTION
        raise ApiError(405, f"method {method} is not supported")


class Query:
    """A request's query parameters (first value wins, as the API server reads them)."""

    def __init__(self, text: str) -> None:
        self._values = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def get(self, name: str, default: str = "") -> str:
        return self._values.get(name, default)

    def flag(self, name: str) -> bool:
        return self._values.get(name, "").lower() in ("true", "1")

    def integer(self, name: str) -> int | None:
        raw = self._values.get(name)
        if raw in (None, ""):
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise bad_request(f"invalid value for {name}: {raw!r}") from exc

    @property
    def dry_run(self) -> bool:
        value = self._values.get("dryRun")
        if value is None:
            return False
        if value != "All":
            raise bad_request(f"Invalid dry run value: {value!r}; only 'All' is supported")
        return True


def _group_version(parts: list[str]) -> tuple[str, str, list[str]]:
    if parts[:1] == ["api"] and len(parts) >= 2:
        return "", parts[1], parts[2:]
    if parts[:1] == ["apis"] and len(parts) >= 3:
        return parts[1], parts[2], parts[3:]
    raise no_route()


def parse_route(registry: KindRegistry, path: str) -> Route:
    """The resource a path names; raises a 404 ``ApiError`` when nothing is served there."""
    parts = [p for p in path.split("/") if p]
    group, version, rest = _group_version(parts)

    def kind(plural: str) -> KindInfo:
        info = registry.by_plural(group, version, plural)
        if info is None:
            raise no_route()
        return info

    if not rest:
        raise no_route()
    if rest[0] == "namespaces" and len(rest) >= 3 and registry.by_plural(group, version, rest[2]) is not None:
        info = kind(rest[2])
        if not info.namespaced:
            raise no_route()
        return _finish(info, rest[1], rest[3:])
    info = kind(rest[0])
    if info.namespaced and len(rest) > 1:
        raise no_route()  # a namespaced kind is only reachable through /namespaces/<ns>/ or as a collection
    return _finish(info, None, rest[1:])


def _finish(info: KindInfo, namespace: str | None, rest: list[str]) -> Route:
    if len(rest) > 2:
        raise no_route()
    name = rest[0] if rest else None
    sub = rest[1] if len(rest) > 1 else None
    if sub is not None and sub not in (*info.subresources, "scale"):
        raise no_route()
    if name == "":
        raise bad_request("resource name may not be empty")
    return Route(info, namespace, name, sub)
