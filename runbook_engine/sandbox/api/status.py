"""API errors and the ``Status`` bodies the real API server answers them with.

Handlers raise ``ApiError``; the HTTP layer renders ``ApiError.body()`` with its ``code``. Messages,
reasons and ``details`` follow the real server (e.g. ``deployments.apps "x" not found``), because
clients parse them: kubectl prints ``message`` and reads the causes of an apply conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.errors import ClusterError
from runbook_engine.kube.refs import KindInfo

Obj = dict[str, Any]


class Reason(StrEnum):
    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    CONFLICT = "Conflict"
    INVALID = "Invalid"
    BAD_REQUEST = "BadRequest"
    UNAUTHORIZED = "Unauthorized"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    NOT_ACCEPTABLE = "NotAcceptable"
    GONE = "Expired"
    INTERNAL = "InternalError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    TOO_MANY_REQUESTS = "TooManyRequests"
    TIMEOUT = "Timeout"
    FORBIDDEN = "Forbidden"


#: The reason a status code carries when nothing more specific is known.
REASON_BY_CODE: dict[int, Reason] = {
    400: Reason.BAD_REQUEST,
    401: Reason.UNAUTHORIZED,
    403: Reason.FORBIDDEN,
    404: Reason.NOT_FOUND,
    405: Reason.METHOD_NOT_ALLOWED,
    406: Reason.NOT_ACCEPTABLE,
    409: Reason.CONFLICT,
    410: Reason.GONE,
    415: Reason.UNSUPPORTED_MEDIA_TYPE,
    422: Reason.INVALID,
    429: Reason.TOO_MANY_REQUESTS,
    500: Reason.INTERNAL,
    503: Reason.SERVICE_UNAVAILABLE,
    504: Reason.TIMEOUT,
}


@dataclass(frozen=True)
class Cause:
    reason: str
    message: str
    field: str = ""

    def body(self) -> Obj:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class ApiError(Exception):
    """A request the API refuses; ``body()`` is the ``Status`` object sent to the client."""

    code: int
    message: str
    reason: str = ""
    details: Obj = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.reason:
            self.reason = REASON_BY_CODE.get(self.code, Reason.INTERNAL).value

    def body(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def resource_name(info: KindInfo) -> str:
    """How messages name a resource: ``pods``, ``deployments.apps``."""
    return f"{info.plural}.{info.group}" if info.group else info.plural


def _details(info: KindInfo, name: str) -> Obj:
    out: Obj = {"name": name}
    if info.group:
        out["group"] = info.group
    out["kind"] = info.plural
    return out


def not_found(info: KindInfo, name: str) -> ApiError:
    return ApiError(404, f'{resource_name(info)} "{name}" not found', Reason.NOT_FOUND, _details(info, name))


def already_exists(info: KindInfo, name: str) -> ApiError:
    return ApiError(
        409, f'{resource_name(info)} "{name}" already exists', Reason.ALREADY_EXISTS, _details(info, name)
    )


def conflict(info: KindInfo, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {resource_name(info)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        Reason.CONFLICT,
        _details(info, name),
    )


def invalid(info: KindInfo, name: str, causes: list[Cause]) -> ApiError:
    summary = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    details = {**_details(info, name), "kind": info.kind, "causes": [c.body() for c in causes]}
    return ApiError(422, f'{info.kind} "{name}" is invalid: {summary}', Reason.INVALID, details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, Reason.BAD_REQUEST)


def no_route() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", Reason.NOT_FOUND, {})


def method_not_allowed(info: KindInfo) -> ApiError:
    return ApiError(
        405,
        "the server does not allow this method on the requested resource",
        Reason.METHOD_NOT_ALLOWED,
        {"group": info.group, "kind": info.plural} if info.group else {"kind": info.plural},
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", Reason.UNAUTHORIZED)


def from_cluster_error(err: ClusterError, info: KindInfo, name: str) -> ApiError:
    """Translate a store error into the API's wording for this resource."""
    if err.reason == "NotFound":
        return not_found(info, name)
    if err.reason == "AlreadyExists":
        return already_exists(info, name)
    if err.reason == "Conflict":
        return conflict(info, name)
    if err.status == 422:
        return invalid(info, name, [Cause("FieldValueInvalid", err.message)])
    return ApiError(err.status or 500, err.message)


def success(info: KindInfo, name: str, uid: str) -> Obj:
    """The body of a DELETE that removed the object at once."""
    details: Obj = {"name": name}
    if info.group:
        details["group"] = info.group
    details.update({"kind": info.plural, "uid": uid})
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
