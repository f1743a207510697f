"""The API as a function from request to response, independent of sockets and TLS.

Order of checks, as on a real server: public endpoints (``/metrics``, health, ``/version``), then
bearer-token authentication (401), then the fault set (latency, injected errors), then the route.

The admin endpoint ``/sandbox/admin/faults`` (bearer token required) switches faults at run time
through the server's ``FaultBoard``, in the scenario's ``faults:`` entry shape:

- ``GET /sandbox/admin/faults``: ``{"faults": [{"id": ..., "type": ..., ...}]}``, every active fault;
- ``GET /sandbox/admin/faults/<id>``: ``{"fault": {...}}``;
- ``POST /sandbox/admin/faults`` with one entry, e.g. ``{"crashloop": {"namespace": "sre",
  "workload": "api"}}``: 201 ``{"fault": {...}}``; an unknown type or a malformed entry is a 422
  whose causes name the problem (and, for an unknown type, every accepted type);
- ``DELETE /sandbox/admin/faults/<id>`` lifts one fault, ``DELETE /sandbox/admin/faults`` all.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.errors import UserInputError
from runbook_engine.sandbox.api import discovery, watch
from runbook_engine.sandbox.api.patching import decode
from runbook_engine.sandbox.api.resources import ResourceApi, WriteContext
from runbook_engine.sandbox.api.routing import Query, Route, Verb, parse_route
from runbook_engine.sandbox.api.status import (
    ApiError,
    Cause,
    Reason,
    bad_request,
    method_not_allowed,
    no_route,
    unauthorized,
)
from runbook_engine.sandbox.api.table import table_for, wants_table
from runbook_engine.sandbox.faults import ApiFaults, FaultBoard, FaultSet, UnknownFaultShape
from runbook_engine.sandbox.store import Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]
JSON = "application/json"
_PUBLIC = frozenset({"/healthz", "/livez", "/readyz", "/version"})
ADMIN_FAULTS = "/sandbox/admin/faults"


@dataclass
class Request:
    method: str
    path: str
    query: Query
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes = b""
    closed: Callable[[], bool] = lambda: False  # whether the client has gone (for watches)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    code: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # sent chunked, one piece per event


def json_response(code: int, data: Any, content_type: str = JSON, headers: dict[str, str] | None = None) -> Response:
    return Response(code, json.dumps(data, separators=(",", ":")).encode(), content_type, headers or {})


class ApiApp:
    """Routes requests to discovery, the admin endpoint and the resource verbs."""

    def __init__(
        self,
        store: Store,
        resources: ResourceApi,
        *,
        token: str,
        faults: FaultSet,
        metrics: Callable[[], str] | None = None,
        address: str = "",
        admin: FaultBoard | None = None,
    ) -> None:
        """``admin`` switches faults for the admin endpoint (default: the API faults of ``faults``)."""
        self.store = store
        self.resources = resources
        self.token = token
        self.faults = faults
        self.admin = admin or FaultBoard([ApiFaults(faults)])
        self.metrics = metrics
        self.address = address

    def handle(self, req: Request) -> Response:
        try:
            return self._dispatch(req)
        except ApiError as err:
            return json_response(err.code, err.body(), headers=err.headers)
        except Exception as exc:  # a bug in the emulator must still answer like a server
            log.exception("unhandled error serving %s %s", req.method, req.path)
            internal = ApiError(500, f"Internal error occurred: {type(exc).__name__}: {exc}")
            return json_response(500, internal.body())

    def _dispatch(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if path == "/metrics" and self.metrics is not None:
            return Response(200, self.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path in _PUBLIC:
            if path == "/version":
                return json_response(200, discovery.SERVER_VERSION)
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if not hmac.compare_digest(req.header("authorization").encode(), f"Bearer {self.token}".encode()):
            raise unauthorized()
        if path == ADMIN_FAULTS or path.startswith(ADMIN_FAULTS + "/"):
            return self._admin_faults(req, path)
        found = self._discovery(req, path)
        if found is not None:
            return found
        return self._resource(req, path)

    # -- discovery -----------------------------------------------------------------------------
    def _discovery(self, req: Request, path: str) -> Response | None:
        if req.method != "GET":
            return None
        registry = self.store.registry
        parts = path.strip("/").split("/")
        aggregated = discovery.wants_aggregated(req.header("accept"))
        if path in ("/api", "/apis") and aggregated:
            agg = discovery.aggregated(registry, core=path == "/api")
            return json_response(200, agg, discovery.AGGREGATED_CONTENT_TYPE)
        doc: Obj | None = None
        if path == "/api":
            doc = discovery.core_versions(self.address)
        elif path == "/apis":
            doc = discovery.group_list(registry)
        elif parts[0] == "api" and len(parts) == 2:
            doc = discovery.resource_list(registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            doc = discovery.group(registry, parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = discovery.resource_list(registry, parts[1], parts[2])
        elif path == "/openapi/v3":
            doc = discovery.openapi_index(registry)
        elif parts[:3] == ["openapi", "v3", "api"] and len(parts) == 4:
            doc = discovery.openapi_group_version(registry, "", parts[3])
        elif parts[:3] == ["openapi", "v3", "apis"] and len(parts) == 5:
            doc = discovery.openapi_group_version(registry, parts[3], parts[4])
        else:
            return None
        if doc is None:
            raise no_route()
        return json_response(200, doc)

    # -- admin ---------------------------------------------------------------------------------
    def _admin_faults(self, req: Request, path: str) -> Response:
        fault_id = path[len(ADMIN_FAULTS) + 1:] if path != ADMIN_FAULTS else ""
        if req.method == "GET":
            return self._admin_get(fault_id)
        if req.method == "POST" and not fault_id:
            return json_response(201, {"fault": self._admin_add(_fault_spec(req.body))})
        if req.method == "DELETE":
            if not fault_id:
                self.admin.clear()
            elif not self.admin.remove(fault_id):
                raise ApiError(404, f'fault "{fault_id}" not found')
            return json_response(200, {"faults": self.admin.active()})
        raise ApiError(405, f"method {req.method} is not allowed on {path}")

    def _admin_get(self, fault_id: str) -> Response:
        active = self.admin.active()
        if not fault_id:
            return json_response(200, {"faults": active})
        found = next((f for f in active if f.get("id") == fault_id), None)
        if found is None:
            raise ApiError(404, f'fault "{fault_id}" not found')
        return json_response(200, {"fault": found})

    def _admin_add(self, spec: Obj) -> Obj:
        try:
            return self.admin.add(spec)
        except UnknownFaultShape as exc:
            accepted = ", ".join(exc.accepted)
            cause = Cause("FieldValueNotSupported", f"Unsupported value: {exc.shape!r}: supported values: {accepted}",
                          exc.shape)
            raise _invalid_fault(exc.message, cause) from exc
        except UserInputError as exc:
            field = next(iter(spec), "")
            message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
            raise _invalid_fault(message, Cause("FieldValueInvalid", message, str(field))) from exc

    # -- resources -----------------------------------------------------------------------------
    def _resource(self, req: Request, path: str) -> Response:
        route = parse_route(self.store.registry, path)
        verb = route.verb(req.method, req.query.flag("watch"))
        if verb.value not in route.info.verbs:
            raise method_not_allowed(route.info)
        decision = self.faults.decide(verb.value, route.info, route.namespace)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.error is not None:
            raise decision.error
        return self._verb(req, route, verb)

    def _verb(self, req: Request, route: Route, verb: Verb) -> Response:
        api = self.resources
        ctx = WriteContext(req.query, self._manager(req), req.header("content-type"))
        if verb is Verb.GET:
            return self._get(req, route)
        if verb is Verb.LIST:
            listed = api.list(route, req.query)
            if wants_table(req.header("accept")):
                return json_response(200, table_for(route.info, listed["items"], listed["metadata"]))
            return self._list_response(listed)
        if verb is Verb.WATCH:
            return self._watch(req, route)
        if verb is Verb.CREATE:
            if route.name is not None:
                raise method_not_allowed(route.info)
            return json_response(201, api.create(route, self._body(req), ctx))
        if verb is Verb.UPDATE:
            return json_response(200, api.update(route, self._body(req), ctx))
        if verb is Verb.PATCH:
            code, obj = api.patch(route, req.body, ctx)
            return json_response(code, obj)
        options = self._delete_options(req)
        if verb is Verb.DELETE:
            return json_response(200, api.delete(route, options, req.query))
        return json_response(200, api.delete_collection(route, options, req.query))

    def _list_response(self, listed: Obj) -> Response:
        """One JSON document: the envelope, then each item's JSON as the store keeps it encoded."""
        envelope = json.dumps({k: v for k, v in listed.items() if k != "items"}, separators=(",", ":"))
        items = b",".join(self.store.encoded(listed["items"]))
        return Response(200, envelope[:-1].encode() + b',"items":[' + items + b"]}")

    def _get(self, req: Request, route: Route) -> Response:
        if route.subresource == "log":
            return Response(200, self.resources.log(route, req.query).encode(), "text/plain")
        if route.subresource == "scale":
            return json_response(200, self.resources.scale(route))
        obj = self.resources.get(route)
        if wants_table(req.header("accept")):
            return json_response(200, table_for(route.info, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}))
        return json_response(200, obj)

    def _watch(self, req: Request, route: Route) -> Response:
        match = self.resources.matcher(route, req.query)
        if route.name is not None:  # the legacy form: GET .../pods/<name>?watch=true
            match = _named(route.name, match)
            route = Route(route.info, route.namespace, None, None)
        events = watch.stream(self.store, route, req.query, match, req.closed)
        if wants_table(req.header("accept")):
            events = (_table_event(route, line) for line in events)
        return Response(200, content_type=JSON, stream=events)

    @staticmethod
    def _manager(req: Request) -> str:
        return req.query.get("fieldManager") or req.header("user-agent").split("/")[0] or "unknown"

    @staticmethod
    def _body(req: Request) -> Any:
        return decode(req.body, req.header("content-type") or JSON)

    @staticmethod
    def _delete_options(req: Request) -> Obj:
        if not req.body.strip():
            return {}
        try:
            options = json.loads(req.body)
        except ValueError as exc:
            raise bad_request(f"the DeleteOptions body is not valid JSON: {exc}") from exc
        return options if isinstance(options, dict) else {}


def _named(name: str, match: Callable[[Mapping[str, Any]], bool]) -> Callable[[Mapping[str, Any]], bool]:
    return lambda obj: (obj.get("metadata") or {}).get("name") == name and match(obj)


def _table_event(route: Route, line: bytes) -> bytes:
    event = json.loads(line)
    obj = event["object"]
    if event["type"] != "ERROR":
        event["object"] = table_for(route.info, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion")})
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _fault_spec(body: bytes) -> Obj:
    try:
        spec = json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"the fault is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise bad_request('a fault is an object such as {"api_error": {"status": 500}}')
    return spec


def _invalid_fault(message: str, cause: Cause) -> ApiError:
    return ApiError(422, message, Reason.INVALID.value, {"kind": "faults", "causes": [cause.body()]})
