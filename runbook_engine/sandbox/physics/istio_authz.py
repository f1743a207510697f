"""Istio AuthorizationPolicy evaluation at the enforcement point (sidecar or ztunnel).

Order (https://istio.io/latest/docs/concepts/security/#authorization-policies): CUSTOM, then DENY,
then ALLOW; with ALLOW policies present a request must match one of their rules. An ALLOW policy
with no rules — including the empty spec ``{}`` — denies everything it selects; ``rules: [{}]``
allows everything. Principals and namespaces come from the peer's mTLS certificate, so a plaintext
caller has neither. HTTP-only fields on a TCP connection: an ALLOW rule using them never matches,
a DENY rule ignores them and so denies more
(https://istio.io/latest/docs/tasks/security/authorization/authz-tcp/). ztunnel cannot read L7
attributes: a policy with L7 rules enforced by ztunnel fails safe by becoming a DENY policy
(https://istio.io/latest/docs/ambient/usage/l4-policy/). ``cluster.local`` in a principal stands
for the local trust domain (as do ``meshConfig.trustDomainAliases``). Policies annotated
``istio.io/dry-run: "true"`` are not enforced. A matching CUSTOM policy whose provider is not
among ``meshConfig.extensionProviders`` fails closed; with a defined provider the request goes on
(the sandbox emulates no external authorizer's decisions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.topology import MeshView, ip_in

AP_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
_L7_SOURCE = frozenset({"requestPrincipals", "notRequestPrincipals"})
_L7_OPERATION = frozenset({"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"})


class Action(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    CUSTOM = "CUSTOM"
    AUDIT = "AUDIT"


class Enforcer(StrEnum):
    SIDECAR = "sidecar"
    ZTUNNEL = "ztunnel"
    WAYPOINT = "waypoint"  # an L7 proxy in front of ambient workloads

    @property
    def l7(self) -> bool:
        return self is not Enforcer.ZTUNNEL


@dataclass(frozen=True)
class Waypoint:
    """The waypoint a service's traffic goes through: policies attach to it or to the service."""

    namespace: str
    name: str
    service: str


@dataclass(frozen=True)
class Request:
    """What the enforcement point knows about a request or connection."""

    principal: str  # "<trust-domain>/ns/<ns>/sa/<sa>" from the peer certificate; "" when plaintext
    source_ip: str
    port: int  # the workload (target) port
    hosts: tuple[str, ...] = ()
    method: str = "GET"
    path: str = "/"
    http: bool = True  # L7 attributes are visible

    @property
    def source_namespace(self) -> str:
        parts = self.principal.split("/")
        return parts[2] if len(parts) >= 5 and parts[1] == "ns" else ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass
class _Policy:
    name: str
    action: Action
    rules: list[dict[str, Any]] | None  # None: no rules field (matches nothing)
    provider: str = ""
    l7_rules: list[bool] = field(default_factory=list)


def glob(pattern: str, value: str) -> bool:
    if pattern == "*":
        return value != ""
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def _canonical(principal: str, domains: tuple[str, ...]) -> str:
    """A principal with an alias of the local trust domain (or ``cluster.local``) rewritten to it.

    https://istio.io/latest/docs/tasks/security/authorization/authz-td-migration/
    """
    head, sep, rest = principal.partition("/")
    if sep and domains and (head in domains or head == "cluster.local"):
        return f"{domains[0]}/{rest}"
    return principal


def _principal_match(pattern: str, value: str, domains: tuple[str, ...]) -> bool:
    return glob(_canonical(pattern, domains), _canonical(value, domains))


def _any(patterns: Iterable[Any], value: str, domains: tuple[str, ...] = ()) -> bool:
    return any(_principal_match(str(p), value, domains) for p in patterns)


def _has_l7(rule: dict[str, Any]) -> bool:
    sources = [f.get("source") or {} for f in rule.get("from") or []]
    operations = [t.get("operation") or {} for t in rule.get("to") or []]
    conditions = [str(w.get("key", "")) for w in rule.get("when") or []]
    return (
        any(_L7_SOURCE & set(s) for s in sources)
        or any(_L7_OPERATION & set(op) for op in operations)
        or any(k.startswith(("request.", "experimental.")) for k in conditions)
    )


def _strip_l7(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "from": [
            {"source": {k: v for k, v in (f.get("source") or {}).items() if k not in _L7_SOURCE}}
            for f in rule.get("from") or []
        ]
        or None,
        "to": [
            {"operation": {k: v for k, v in (t.get("operation") or {}).items() if k not in _L7_OPERATION}}
            for t in rule.get("to") or []
        ]
        or None,
        "when": [w for w in rule.get("when") or [] if not str(w.get("key", "")).startswith("request.")]
        or None,
    }


class Matcher:
    """Matches one rule against a request, for the local trust domain and its aliases."""

    def __init__(self, request: Request, domains: tuple[str, ...]) -> None:
        self.req = request
        self.td = domains

    def rule(self, rule: dict[str, Any]) -> bool:
        sources = rule.get("from") or []
        operations = rule.get("to") or []
        return (
            (not sources or any(self.source(f.get("source") or {}) for f in sources))
            and (not operations or any(self.operation(t.get("operation") or {}) for t in operations))
            and all(self.condition(w) for w in rule.get("when") or [])
        )

    def source(self, src: dict[str, Any]) -> bool:
        r = self.req
        checks: list[tuple[str, Callable[[Any], bool]]] = [
            ("principals", lambda v: _any(v, r.principal, self.td)),
            ("notPrincipals", lambda v: not _any(v, r.principal, self.td)),
            ("namespaces", lambda v: _any(v, r.source_namespace)),
            ("notNamespaces", lambda v: not _any(v, r.source_namespace)),
            ("ipBlocks", lambda v: ip_in(r.source_ip, [str(x) for x in v])),
            ("notIpBlocks", lambda v: not ip_in(r.source_ip, [str(x) for x in v])),
            ("remoteIpBlocks", lambda v: ip_in(r.source_ip, [str(x) for x in v])),
            ("notRemoteIpBlocks", lambda v: not ip_in(r.source_ip, [str(x) for x in v])),
            ("requestPrincipals", lambda v: _any(v, "")),  # no JWT in the sandbox's traffic
            ("notRequestPrincipals", lambda v: not _any(v, "")),
        ]
        return all(test(src[key]) for key, test in checks if key in src)

    def operation(self, op: dict[str, Any]) -> bool:
        r = self.req
        port = str(r.port)
        checks: list[tuple[str, Callable[[Any], bool]]] = [
            ("ports", lambda v: port in {str(x) for x in v}),
            ("notPorts", lambda v: port not in {str(x) for x in v}),
            ("methods", lambda v: _any(v, r.method)),
            ("notMethods", lambda v: not _any(v, r.method)),
            ("paths", lambda v: _any(v, r.path)),
            ("notPaths", lambda v: not _any(v, r.path)),
            ("hosts", lambda v: any(_any(v, h) for h in r.hosts)),
            ("notHosts", lambda v: not any(_any(v, h) for h in r.hosts)),
        ]
        return all(test(op[key]) for key, test in checks if key in op)

    def condition(self, cond: dict[str, Any]) -> bool:
        key = str(cond.get("key", ""))
        attrs = {
            "source.ip": self.req.source_ip,
            "remote.ip": self.req.source_ip,
            "source.namespace": self.req.source_namespace,
            "source.principal": self.req.principal,
            "destination.port": str(self.req.port),
            "request.auth.principal": "",
        }
        value = attrs.get(key, "")
        if key in ("source.ip", "remote.ip"):
            ok = not cond.get("values") or ip_in(value, [str(v) for v in cond["values"]])
            return ok and not (cond.get("notValues") and ip_in(value, [str(v) for v in cond["notValues"]]))
        ok = not cond.get("values") or _any(cond["values"], value, self.td)
        return ok and not (cond.get("notValues") and _any(cond["notValues"], value, self.td))


def _dry_run(policy: o.Obj) -> bool:
    return o.truthy(o.annotations_of(policy).get(o.ISTIO_DRY_RUN_ANNOTATION))


def applicable_policies(view: MeshView, pod: o.Obj) -> list[o.Obj]:
    """Policies selecting the pod: root-namespace ones mesh-wide, then the pod's namespace."""
    ns, pod_labels = o.namespace_of(pod), o.labels(pod)
    out = []
    for policy in view.kinds("AuthorizationPolicy", *AP_VERSIONS):
        spec = o.spec(policy)
        if spec.get("targetRef") or spec.get("targetRefs") or _dry_run(policy):
            continue  # attached to a gateway/waypoint, or dry-run only
        if o.namespace_of(policy) not in (ns, view.root_namespace):
            continue
        selector = spec.get("selector")
        if selector and not selector_from_object(selector).matches(pod_labels):
            continue
        out.append(policy)
    return out


def waypoint_policies(view: MeshView, waypoint: Waypoint) -> list[o.Obj]:
    """Policies whose ``targetRefs`` name the waypoint (Gateway) or the service it serves.

    https://istio.io/latest/docs/ambient/usage/l7-features/ : with a waypoint, policies are attached
    with ``targetRefs``; ztunnel admits what the waypoint forwards.
    """
    wanted = {("Gateway", waypoint.name), ("Service", waypoint.service)}
    out = []
    for policy in view.kinds("AuthorizationPolicy", *AP_VERSIONS):
        spec = o.spec(policy)
        refs = spec.get("targetRefs") or ([spec["targetRef"]] if spec.get("targetRef") else [])
        if o.namespace_of(policy) != waypoint.namespace or _dry_run(policy):
            continue
        if any((str(r.get("kind")), str(r.get("name"))) in wanted for r in refs):
            out.append(policy)
    return out


def _compile(policy: o.Obj, request: Request, enforcer: Enforcer) -> list[_Policy]:
    spec = o.spec(policy)
    name = f"{o.namespace_of(policy)}/{o.name_of(policy)}"
    action = Action(str(spec.get("action") or "ALLOW").upper())
    provider = str((spec.get("provider") or {}).get("name", ""))
    rules = spec.get("rules")
    if rules is None or (request.http and enforcer.l7):
        return [_Policy(name, action, rules, provider)]
    plain = [r or {} for r in rules if not _has_l7(r or {})]
    l7 = [_strip_l7(r) for r in rules if _has_l7(r or {})]
    if action is Action.ALLOW and enforcer is Enforcer.ZTUNNEL and l7:
        out = [_Policy(f"{name} (L7 rules fail safe as DENY at ztunnel)", Action.DENY, l7)]
        return out + ([_Policy(name, action, plain)] if plain else [])
    if action is Action.ALLOW:
        return [_Policy(name, action, plain)]  # HTTP-only ALLOW rules never match TCP
    return [_Policy(name, action, plain + l7, provider)]


def authorize(
    view: MeshView, pod: o.Obj, request: Request, enforcer: Enforcer, waypoint: Waypoint | None = None
) -> Decision:
    found = waypoint_policies(view, waypoint) if waypoint is not None else applicable_policies(view, pod)
    policies = [p for pol in found for p in _compile(pol, request, enforcer)]
    matcher = Matcher(request, (view.trust_domain, *view.cp.trust_domain_aliases()))

    def matches(p: _Policy) -> bool:
        return any(matcher.rule(r or {}) for r in p.rules or [])

    for p in policies:
        if p.action is Action.CUSTOM and matches(p) and p.provider not in view.cp.extension_providers():
            return Decision(
                False, f"CUSTOM policy {p.name} names unknown provider {p.provider!r} (fails closed)"
            )
    for p in policies:
        if p.action is Action.DENY and matches(p):
            return Decision(False, f"DENY policy {p.name} matches")
    allows = [p for p in policies if p.action is Action.ALLOW]
    if not allows:
        return Decision(True, "no ALLOW policy selects the workload")
    hit = next((p for p in allows if matches(p)), None)
    if hit is None:
        names = ", ".join(p.name for p in allows)
        return Decision(False, f"no rule of the ALLOW policies ({names}) matches")
    return Decision(True, f"ALLOW policy {hit.name} matches")
