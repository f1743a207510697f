"""Istio AuthorizationPolicy evaluation for one request arriving at one workload.

From https://istio.io/latest/docs/reference/config/security/authorization-policy/:

- CUSTOM policies are evaluated first, then DENY, then ALLOW: a matching DENY denies; if no ALLOW
  policy applies to the workload the request is allowed; otherwise one ALLOW must match.
- A policy with no rules never matches: ``spec: {}`` (action ALLOW) therefore denies everything for
  the selected workloads, while ``rules: [{}]`` matches and allows everything.
- Within a rule, ``from`` sources, ``to`` operations and ``when`` conditions are ANDed; the entries of
  one list are ORed; the fields of one source/operation are ANDed; ``notX`` matches when none of its
  values match (so a caller without a value matches ``notPrincipals``).
- ``principals`` and ``namespaces`` come from the peer's mTLS certificate: a plaintext caller has
  neither (https://istio.io/latest/docs/concepts/security/#dependency-on-mutual-tls).
- Strings match exactly, by prefix ``abc*``, by suffix ``*abc``, or ``*`` (non-empty).
- A policy in the root namespace applies mesh-wide (its selector then selects in every namespace).
- ``istio.io/dry-run: "true"``: the policy is evaluated and reported but not enforced
  (https://istio.io/latest/docs/tasks/security/authorization/authz-dry-run/).
- HTTP-only fields (methods, paths, hosts, request principals, ``request.*`` conditions) cannot be
  checked on TCP traffic: an ALLOW rule using them never matches and a DENY rule is enforced without
  them (https://istio.io/latest/docs/concepts/security/, "Authorization on TCP"). Ztunnel is such an
  L4-only enforcement point: in ambient mode, a policy with L7 attributes bound to a workload without
  a waypoint fails safe and denies the connection (https://istio.io/latest/docs/ambient/usage/l4-policy/).
- CUSTOM delegates to an ``extensionProviders`` entry of mesh config; the external decision is outside
  this model and is assumed to allow, but a provider missing from mesh config denies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.selectors import selector_from_object
from runbook_engine.mesh.identity import namespace_of_principal, principal_matches, string_match
from runbook_engine.mesh.model import MeshConfig, MeshView, Obj, Workload, api_group, ref

ISTIO_SECURITY = "security.istio.io"
HTTP_SOURCE_FIELDS = frozenset({"requestPrincipals", "notRequestPrincipals"})
HTTP_OPERATION_FIELDS = frozenset({"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"})


class Action(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    CUSTOM = "CUSTOM"
    AUDIT = "AUDIT"


_ACTIONS = tuple(Action)  # iterating an enum class is slow; decisions do it per request


@dataclass(frozen=True)
class Request:
    """What the enforcement point knows about a request."""

    principal: str | None
    port: int
    http: bool
    source_ip: str | None = None
    method: str = "GET"
    path: str = "/"
    host: str = ""

    @property
    def namespace(self) -> str | None:
        return namespace_of_principal(self.principal) if self.principal else None


@dataclass(frozen=True)
class AuthzDecision:
    allowed: bool
    reasons: list[str] = field(default_factory=list)
    policy: str | None = None
    dry_run: list[str] = field(default_factory=list)


def action_of(policy: Mapping[str, Any]) -> Action:
    text = str((policy.get("spec") or {}).get("action") or "ALLOW").upper()
    return Action(text) if text in Action.__members__ else Action.ALLOW


def is_dry_run(policy: Mapping[str, Any]) -> bool:
    annotations = (policy.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get("istio.io/dry-run", "")).lower() == "true"


# ----- which policies apply ------------------------------------------------------------------------------
def _selects(policy: Mapping[str, Any], wl: Workload) -> bool:
    spec = policy.get("spec") or {}
    if spec.get("targetRefs") or spec.get("targetRef"):
        return False
    selector = spec.get("selector")
    return not selector or selector_from_object(selector).matches(wl.template_labels)


def _targets(policy: Mapping[str, Any], service: str | None, waypoint: str | None) -> bool:
    spec = policy.get("spec") or {}
    refs = list(spec.get("targetRefs") or []) + ([spec["targetRef"]] if spec.get("targetRef") else [])
    for target in refs:
        kind, name = target.get("kind"), target.get("name")
        if (kind == "Service" and name == service) or (kind == "Gateway" and name == waypoint):
            return True
    return False


def _istio_policies(view: MeshView, ns: str) -> list[Obj]:
    return view.objects("AuthorizationPolicy", ns, ISTIO_SECURITY)


def workload_policies(view: MeshView, wl: Workload) -> list[Obj]:
    """Selector/namespace-scoped policies for a workload, incl. root-namespace (mesh-wide) ones."""
    key = ("authz", wl.key)
    if key not in view.cache:
        root = view.mesh.root_namespace
        candidates = _istio_policies(view, wl.namespace)
        if wl.namespace != root:
            candidates = candidates + _istio_policies(view, root)
        view.cache[key] = [p for p in candidates if _selects(p, wl)]
    found: list[Obj] = view.cache[key]
    return found


def waypoint_policies(view: MeshView, ns: str, service: str, waypoint: str) -> list[Obj]:
    """Policies attached by ``targetRefs`` to a Service or to the waypoint Gateway (enforced there)."""
    return [p for p in _istio_policies(view, ns) if _targets(p, service, waypoint)]


# ----- matching ----------------------------------------------------------------------------------------
def _any_string(values: Sequence[Any], value: str | None) -> bool:
    return any(string_match(str(v), value) for v in values)


def _in_blocks(blocks: Sequence[Any], ip: str | None) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
        networks = [ipaddress.ip_network(str(block), strict=False) for block in blocks]
    except ValueError:
        return False  # a malformed address or CIDR matches nothing, as Envoy rejects it
    return any(address.version == n.version and address in n for n in networks)


def _field_ok(name: str, values: Sequence[Any], req: Request, mesh: MeshConfig) -> bool:
    """One positive source/operation field (``notX`` handled by the caller)."""
    if name == "principals":
        return any(principal_matches(str(v), req.principal, mesh) for v in values)
    if name == "namespaces":
        return _any_string(values, req.namespace)
    if name in ("ipBlocks", "remoteIpBlocks"):
        return _in_blocks(values, req.source_ip)
    if name == "requestPrincipals":
        return False  # no request carries a validated JWT in this model
    if name == "ports":
        return str(req.port) in {str(v) for v in values}
    if name == "methods":
        return _any_string(values, req.method.upper())
    if name == "paths":
        return _any_string(values, req.path)
    if name == "hosts":
        return _any_string([str(v).lower() for v in values], req.host.lower())
    return False


def _clause_ok(clause: Mapping[str, Any], req: Request, mesh: MeshConfig, drop_l7: bool) -> bool:
    for name, values in clause.items():
        if drop_l7 and (name in HTTP_SOURCE_FIELDS or name in HTTP_OPERATION_FIELDS):
            continue
        negated = name.startswith("not") and name[3:4].isupper()
        base = name[3].lower() + name[4:] if negated else name
        hit = _field_ok(base, list(values or []), req, mesh)
        if hit == negated:
            return False
    return True


def _condition_value(key: str, req: Request) -> str | None:
    return {
        "source.principal": req.principal,
        "source.namespace": req.namespace,
        "source.ip": req.source_ip,
        "remote.ip": req.source_ip,
        "destination.port": str(req.port),
    }.get(key)


def _when_ok(conditions: Sequence[Mapping[str, Any]], req: Request, mesh: MeshConfig, drop_l7: bool) -> bool:
    for cond in conditions:
        key = str(cond.get("key", ""))
        if drop_l7 and key.startswith("request."):
            continue
        value = _condition_value(key, req)
        if key == "source.principal":
            hit_values = any(principal_matches(str(v), value, mesh) for v in cond.get("values") or [])
            hit_not = any(principal_matches(str(v), value, mesh) for v in cond.get("notValues") or [])
        elif key in ("source.ip", "remote.ip"):
            hit_values, hit_not = (
                _in_blocks(cond.get("values") or [], value),
                _in_blocks(cond.get("notValues") or [], value),
            )
        else:
            hit_values = _any_string(cond.get("values") or [], value)
            hit_not = _any_string(cond.get("notValues") or [], value)
        if (cond.get("values") and not hit_values) or hit_not:
            return False
    return True


def rule_has_l7(rule: Mapping[str, Any]) -> bool:
    """Whether a rule uses HTTP-only attributes."""
    sources = [s.get("source") or {} for s in rule.get("from") or []]
    operations = [o.get("operation") or {} for o in rule.get("to") or []]
    return (
        any(HTTP_SOURCE_FIELDS & s.keys() for s in sources)
        or any(HTTP_OPERATION_FIELDS & o.keys() for o in operations)
        or any(str(c.get("key", "")).startswith("request.") for c in rule.get("when") or [])
    )


def rule_matches(rule: Mapping[str, Any], req: Request, mesh: MeshConfig, action: Action) -> bool:
    """Whether one rule matches; on L4-only traffic, L7 parts fail ALLOW rules and are dropped from DENY."""
    drop_l7 = False
    if not req.http and rule_has_l7(rule):
        if action is not Action.DENY:
            return False
        drop_l7 = True
    sources = [s.get("source") or {} for s in rule.get("from") or []]
    operations = [o.get("operation") or {} for o in rule.get("to") or []]
    if sources and not any(_clause_ok(s, req, mesh, drop_l7) for s in sources):
        return False
    if operations and not any(_clause_ok(o, req, mesh, drop_l7) for o in operations):
        return False
    return _when_ok(rule.get("when") or [], req, mesh, drop_l7)


def policy_matches(policy: Mapping[str, Any], req: Request, mesh: MeshConfig) -> bool:
    action = action_of(policy)
    return any(rule_matches(r or {}, req, mesh, action) for r in (policy.get("spec") or {}).get("rules") or [])


# ----- decision ----------------------------------------------------------------------------------------
def _custom(policies: list[Obj], req: Request, mesh: MeshConfig, reasons: list[str]) -> AuthzDecision | None:
    for policy in policies:
        if not policy_matches(policy, req, mesh):
            continue
        provider = str(((policy.get("spec") or {}).get("provider") or {}).get("name", ""))
        if provider not in mesh.extension_providers:
            reasons.append(f"CUSTOM {ref(policy)} names provider {provider!r}, not in mesh config: denied")
            return AuthzDecision(False, reasons, ref(policy))
        reasons.append(f"CUSTOM {ref(policy)} delegates to {provider} (assumed to allow)")
    return None


def _decide(policies: list[Obj], req: Request, mesh: MeshConfig) -> AuthzDecision:
    reasons: list[str] = []
    by_action: dict[Action, list[Obj]] = {a: [] for a in _ACTIONS}
    for policy in policies:
        by_action[action_of(policy)].append(policy)
    custom = _custom(by_action[Action.CUSTOM], req, mesh, reasons)
    if custom is not None:
        return custom
    for policy in by_action[Action.DENY]:
        if policy_matches(policy, req, mesh):
            return AuthzDecision(False, [*reasons, f"DENY {ref(policy)} matches"], ref(policy))
    allows = by_action[Action.ALLOW]
    if not allows:
        return AuthzDecision(True, reasons)
    for policy in allows:
        if policy_matches(policy, req, mesh):
            return AuthzDecision(True, [*reasons, f"ALLOW {ref(policy)} matches"], ref(policy))
    names = ", ".join(ref(p) for p in allows)
    return AuthzDecision(False, [*reasons, f"no ALLOW policy matches (applicable: {names})"], ref(allows[0]))


def _note_l7(decision: AuthzDecision, policies: list[Obj]) -> AuthzDecision:
    """Explain HTTP-only rules that an L4 enforcement point cannot check."""
    l7 = [ref(p) for p in policies if any(rule_has_l7(r or {}) for r in (p.get("spec") or {}).get("rules") or [])]
    if not l7:
        return decision
    note = (
        f"{', '.join(l7)} uses HTTP attributes this L4 connection cannot carry: "
        "ALLOW rules with them never match, DENY rules apply without them"
    )
    return AuthzDecision(decision.allowed, [*decision.reasons, note], decision.policy, decision.dry_run)


def evaluate(policies: list[Obj], req: Request, mesh: MeshConfig) -> AuthzDecision:
    """Evaluate the enforced policies; report what dry-run policies would have changed."""
    if not policies:
        return AuthzDecision(True, [])  # nothing applies: allowed, nothing to explain
    enforced = [p for p in policies if not is_dry_run(p) and api_group(p) == ISTIO_SECURITY]
    dry = [p for p in policies if is_dry_run(p)]
    decision = _decide(enforced, req, mesh)
    if not req.http:
        decision = _note_l7(decision, enforced)
    if not dry:
        return decision
    shadow = _decide(enforced + dry, req, mesh)
    notes = list(decision.dry_run)
    if shadow.allowed != decision.allowed:
        verdict = "allow" if shadow.allowed else "deny"
        notes.append(f"dry-run {', '.join(ref(p) for p in dry)} would {verdict} this request (not enforced)")
    return AuthzDecision(decision.allowed, decision.reasons + notes, decision.policy, notes)
