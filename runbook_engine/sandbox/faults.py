"""Faults: API faults (this module's rules) and the seam every other kind of fault plugs into.

API faults are requests that answer an error status or answer late, as a struggling API server does.

A rule matches by verb (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``,
``deletecollection``), resource (plural such as ``deployments``, or kind) and namespace; each
omitted criterion matches everything. It fires with a ``probability`` or for the next ``count``
matching requests (or always). Rules come from a scenario's ``faults:`` list or are added at
run time through ``/sandbox/admin/faults``, in the same shape::

    {api_error: {status: 500, verb: patch, resource: deployments, probability: 0.3}}
    {api_latency: {seconds: 0.2, verb: list, resource: pods, count: 3}}

Every kind of fault — API faults here, crash loops (``controllers.crashloop``), mesh faults
(``physics.faults``) — is a ``FaultHandler`` for the shapes (top-level keys) it takes. A server's
``FaultBoard`` holds its handlers and is the one place faults are switched on and off: from the
scenario's ``faults:`` list at start, and from the admin endpoint at run time. Each active fault has
an id; the board lists them all and removes them one by one or all at once.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from runbook_engine.errors import UserInputError
from runbook_engine.kube.refs import KindInfo
from runbook_engine.sandbox.api.status import ApiError, Reason

Obj = dict[str, Any]

_MESSAGES: dict[int, tuple[str, Reason]] = {
    500: ("Internal error occurred: injected fault", Reason.INTERNAL),
    503: ("the server is currently unable to handle the request", Reason.SERVICE_UNAVAILABLE),
    504: ("the server was unable to return a response in the time allotted", Reason.TIMEOUT),
    429: ("the server has received too many requests and has asked us to try again later", Reason.TOO_MANY_REQUESTS),
    409: ("the object has been modified; please apply your changes to the latest version and try again",
          Reason.CONFLICT),
    403: ("forbidden: injected fault", Reason.FORBIDDEN),
}


_IDS = itertools.count(1)


def new_fault_id() -> str:
    """A fault id unique in this process (``fault-<n>``), whoever activates the fault."""
    return f"fault-{next(_IDS)}"


class FaultType(StrEnum):
    API_ERROR = "api_error"
    API_LATENCY = "api_latency"


@dataclass
class FaultRule:
    """One declared fault; ``count`` is the number of firings left (None: unlimited)."""

    id: str
    type: FaultType
    status: int = 500
    seconds: float = 0.0
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    probability: float | None = None
    count: int | None = None

    def matches(self, verb: str, info: KindInfo | None, namespace: str | None) -> bool:
        if self.verb and self.verb.lower() != verb:
            return False
        if self.resource:
            wanted = self.resource.lower()
            if info is None or wanted not in (info.plural, info.kind.lower(), info.singular):
                return False
        return not self.namespace or self.namespace == namespace

    def to_dict(self) -> Obj:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Decision:
    """What the fault set does to one request: wait ``delay`` seconds, then maybe fail with ``error``."""

    delay: float = 0.0
    error: ApiError | None = None


def _number(spec: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = spec.get(key)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"fault field {key!r} must be a number, got {value!r}") from exc


def parse_fault(spec: Mapping[str, Any], rule_id: str) -> FaultRule | None:
    """A rule from one ``faults:`` entry; None for faults that are not about the API (e.g. crash loops)."""
    for fault_type in FaultType:
        body = spec.get(fault_type.value)
        if body is None:
            continue
        if not isinstance(body, Mapping):
            raise UserInputError(f"{fault_type.value} must be a mapping", hint="e.g. {api_error: {status: 500}}")
        probability = _number(body, "probability", float)
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise UserInputError(f"fault probability must be between 0 and 1, got {probability}")
        return FaultRule(
            id=rule_id,
            type=fault_type,
            status=_number(body, "status", int) or 500,
            seconds=_number(body, "seconds", float) or 0.0,
            verb=body.get("verb"),
            resource=body.get("resource"),
            namespace=body.get("namespace"),
            probability=probability,
            count=_number(body, "count", int),
        )
    return None


def fault_error(status: int) -> ApiError:
    """The error a real server would return with this status."""
    message, reason = _MESSAGES.get(status, (f"injected fault (HTTP {status})", Reason.INTERNAL))
    details: Obj = {"causes": [{"message": "injected fault"}]} if status == 500 else {}
    headers: dict[str, str] = {}
    if status == 429:
        details = {"retryAfterSeconds": 1}
        headers = {"Retry-After": "1"}
    return ApiError(status, message, reason.value, details, headers)


class FaultSet:
    """The active fault rules of one server; thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def seed(self, value: int) -> None:
        """Make probabilistic faults repeatable (same seed, same sequence of requests: same failures)."""
        with self._lock:
            self._random.seed(value)

    def add_spec(self, spec: Mapping[str, Any], rule_id: str | None = None) -> FaultRule | None:
        """Add the rule of an API fault entry (None for other fault shapes); raises ``UserInputError``."""
        rule = parse_fault(spec, rule_id or new_fault_id())
        if rule is not None:
            with self._lock:
                self._rules.append(rule)
        return rule

    def extend(self, specs: Iterable[Mapping[str, Any]]) -> list[FaultRule]:
        return [r for r in (self.add_spec(s) for s in specs) if r is not None]

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[Obj]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def decide(self, verb: str, info: KindInfo | None, namespace: str | None) -> Decision:
        """Roll the dice for one request; rules whose ``count`` runs out are retired."""
        delay = 0.0
        error: ApiError | None = None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(verb, info, namespace) or not self._fires(rule):
                    continue
                if rule.type is FaultType.API_LATENCY:
                    delay += rule.seconds
                elif error is None:
                    error = fault_error(rule.status)
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
        return Decision(delay, error)

    def _fires(self, rule: FaultRule) -> bool:
        return rule.probability is None or self._random.random() < rule.probability


# -- the seam for every kind of fault ---------------------------------------------------------------


class FaultHandler(Protocol):
    """One kind of fault: the entry shapes it takes, and switching such faults on and off by id."""

    @property
    def shapes(self) -> frozenset[str]:
        """The top-level keys of the fault entries this handler takes (e.g. ``{"crashloop"}``)."""
        ...

    def activate(self, fault_id: str, spec: Mapping[str, Any]) -> Obj:
        """Switch a fault on; returns it as listed. Raises ``UserInputError`` when ``spec`` is malformed."""
        ...

    def deactivate(self, fault_id: str) -> bool:
        """Switch a fault off; False when this handler holds no fault with that id."""
        ...

    def active(self) -> list[Obj]:
        """The active faults, each as ``{"id": ..., "type": <shape>, ...the entry's fields}``."""
        ...


def describe(fault_id: str, spec: Mapping[str, Any]) -> Obj:
    """How a fault entry is listed: its id, its type (the entry's key) and the entry's fields."""
    (shape, body), = spec.items()
    fields = dict(body) if isinstance(body, Mapping) else {"value": body}
    return {"id": fault_id, "type": str(shape), **fields}


class UnknownFaultShape(UserInputError):
    """A fault entry whose shape no handler of this server takes."""

    def __init__(self, shape: str, accepted: Sequence[str]) -> None:
        super().__init__(
            f"unsupported fault type {shape!r}: this sandbox accepts {', '.join(accepted)}",
            hint="a fault is one mapping with one key, its type, e.g. {\"api_error\": {\"status\": 500}}",
        )
        self.shape = shape
        self.accepted = tuple(accepted)


class ApiFaults:
    """The ``FaultHandler`` for API faults: ``api_error`` and ``api_latency`` rules in a ``FaultSet``."""

    shapes = frozenset(t.value for t in FaultType)

    def __init__(self, faults: FaultSet) -> None:
        self.faults = faults

    def activate(self, fault_id: str, spec: Mapping[str, Any]) -> Obj:
        rule = self.faults.add_spec(spec, fault_id)
        if rule is None:
            raise UserInputError(f"not an API fault: {sorted(spec)}", hint="use api_error or api_latency")
        return rule.to_dict()

    def deactivate(self, fault_id: str) -> bool:
        return self.faults.remove(fault_id)

    def active(self) -> list[Obj]:
        return self.faults.rules()  # counted rules that ran out are gone, as they no longer fire


class FaultBoard:
    """Every active fault of one server, switched on and off through its handlers."""

    def __init__(self, handlers: Iterable[FaultHandler] = ()) -> None:
        self._handlers: list[FaultHandler] = []
        self._lock = threading.Lock()
        for handler in handlers:
            self.register(handler)

    def register(self, handler: FaultHandler) -> None:
        """Take the shapes of ``handler`` too (a shape taken twice goes to the first handler)."""
        with self._lock:
            self._handlers.append(handler)

    @property
    def shapes(self) -> list[str]:
        """Every accepted fault type, in registration order."""
        with self._lock:
            return [s for h in self._handlers for s in sorted(h.shapes)]

    def accepts(self, spec: Mapping[str, Any]) -> bool:
        return len(spec) == 1 and self._handler(str(next(iter(spec)))) is not None

    def add(self, spec: Mapping[str, Any]) -> Obj:
        """Activate one fault entry; raises ``UnknownFaultShape`` or ``UserInputError`` (malformed)."""
        if len(spec) != 1:
            raise UserInputError(
                f"a fault is a mapping with one key, its type; got {len(spec)} keys",
                hint="e.g. {\"crashloop\": {\"namespace\": \"sre\", \"workload\": \"api\"}}",
            )
        shape = str(next(iter(spec)))
        handler = self._handler(shape)
        if handler is None:
            raise UnknownFaultShape(shape, self.shapes)
        return handler.activate(new_fault_id(), spec)

    def remove(self, fault_id: str) -> bool:
        """Deactivate one fault; False when no fault has that id."""
        return any(h.deactivate(fault_id) for h in self._snapshot())

    def clear(self) -> None:
        """Deactivate every fault."""
        for handler in self._snapshot():
            for fault in handler.active():
                handler.deactivate(str(fault["id"]))

    def active(self) -> list[Obj]:
        return [fault for h in self._snapshot() for fault in h.active()]

    def _handler(self, shape: str) -> FaultHandler | None:
        return next((h for h in self._snapshot() if shape in h.shapes), None)

    def _snapshot(self) -> list[FaultHandler]:
        with self._lock:
            return list(self._handlers)
