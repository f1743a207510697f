"""API faults: requests that answer an error status or answer late, as a struggling API server does.

A rule matches by verb (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``,
``deletecollection``), resource (plural such as ``deployments``, or kind) and namespace; each
omitted criterion matches everything. It fires with a ``probability`` or for the next ``count``
matching requests (or always). Rules come from a scenario's ``faults:`` list or are added at
run time through ``/sandbox/admin/faults``, in the same shape::

    {api_error: {status: 500, verb: patch, resource: deployments, probability: 0.3}}
    {api_latency: {seconds: 0.2, verb: list, resource: pods, count: 3}}
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

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
        self._ids = itertools.count(1)

    def seed(self, value: int) -> None:
        """Make probabilistic faults repeatable (same seed, same sequence of requests: same failures)."""
        with self._lock:
            self._random.seed(value)

    def add_spec(self, spec: Mapping[str, Any]) -> FaultRule | None:
        rule = parse_fault(spec, f"fault-{next(self._ids)}")
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
