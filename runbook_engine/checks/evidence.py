"""Shared helpers of the verification checks: findings, verdicts, listings and evidence text.

A check collects ``Finding``s (one per workload, node, flow…, each with its own status) and
``conclude`` turns them into one ``Verdict``: the worst status wins (FAIL over NO_DATA over
PRE-EXISTING over FLAG over PASS), and the summary names the findings of that status. Evidence
output goes through ``redact_text`` so that no token or private key reaches a report.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runbook_engine.checks.base import Check, CheckContext
from runbook_engine.kube.redact import redact_text
from runbook_engine.report.verdict import Evidence, Status, Verdict

MAX_LISTED = 5
MAX_ROWS = 60

#: How much a status weighs when several findings are combined into one verdict.
SEVERITY: dict[Status, int] = {
    Status.SKIP: 0,
    Status.PASS: 1,
    Status.FLAG: 2,
    Status.PREEXISTING: 3,
    Status.NO_DATA: 4,
    Status.FAIL: 5,
}


@dataclass(frozen=True)
class Finding:
    """One observation of a check: a subject (workload, node, flow) and what was seen."""

    status: Status
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject} ({self.detail})" if self.detail else self.subject


def worst(statuses: Iterable[Status], default: Status = Status.PASS) -> Status:
    """The most severe status, or ``default`` when there is none."""
    return max(statuses, key=SEVERITY.__getitem__, default=default)


def listing(items: Sequence[object], limit: int = MAX_LISTED) -> str:
    """``a, b, c and 4 more``."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def every(n: int, word: str) -> str:
    """``all 3 flows``, but ``the 1 flow``."""
    return f"{'the' if n == 1 else 'all'} {plural(n, word)}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], limit: int = MAX_ROWS) -> str:
    """Rows aligned in columns, as kubectl prints them."""
    shown = [list(header), *[list(r) for r in rows[:limit]]]
    widths = [max(len(r[i]) for r in shown) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more")
    return "\n".join(lines)


def ns_flag(namespace: str | None) -> str:
    return f" -n {namespace}" if namespace else ""


def jsonpath(resource: str, name: str | None, namespace: str | None, path: str) -> str:
    """``kubectl get <resource> [<name>] -n <ns> -o jsonpath='<path>'`` (``-A`` without namespace and name)."""
    where = ns_flag(namespace) if namespace else (" -A" if name is None else "")
    target = f" {name}" if name else ""
    return f"kubectl get {resource}{target}{where} -o jsonpath='{path}'"


def without_credentials(url: str) -> str:
    """The URL without its user and password, for evidence: ``https://host:9090/prom/``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def evidence(command: str, output: str, note: str = "") -> Evidence:
    """Evidence with its output redacted (tokens, JWTs, private keys)."""
    return Evidence(command, redact_text(output.rstrip("\n")), note)


def summary_of(findings: Sequence[Finding], status: Status, what: str) -> str:
    """``<what> (<n>): a (why), b (why)`` for the findings of ``status``."""
    chosen = [f for f in findings if f.status is status]
    return f"{what} ({len(chosen)}): {listing(chosen)}"


def conclude(
    check: Check[Any],
    ctx: CheckContext,
    status: Status,
    summary: str,
    evidence: Iterable[Evidence] = (),
    *,
    hint: str = "",
    data: Mapping[str, Any] | None = None,
) -> Verdict:
    """The verdict of ``check`` with its title, section and purpose filled in."""
    return Verdict(
        check=check.name,
        title=ctx.title or check.name,
        status=status,
        summary=summary,
        hint=hint,
        evidence=tuple(evidence),
        section=check.section,
        purpose=check.purpose,
        data=dict(data or {}),
    )


PA_COMMAND = ("kubectl get peerauthentications.security.istio.io -A -o custom-columns=NAMESPACE:.metadata.namespace,"
              "NAME:.metadata.name,MODE:.spec.mtls.mode,SELECTOR:.spec.selector.matchLabels,"
              "PORTS:.spec.portLevelMtls,CREATED:.metadata.creationTimestamp")


def go_value(value: Any) -> str:
    """A value as kubectl's custom columns print it (Go formatting): ``map[app:vault]``, ``[a b]``."""
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(value.items(), key=lambda i: str(i[0]))) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def pa_table(policies: Sequence[Mapping[str, Any]]) -> str:
    """PeerAuthentications as ``PA_COMMAND`` prints them."""
    rows = []
    for pa in policies:
        meta, spec = pa.get("metadata") or {}, pa.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels")
        ports = spec.get("portLevelMtls")
        rows.append([str(meta.get("namespace", "")), str(meta.get("name", "")),
                     str((spec.get("mtls") or {}).get("mode") or "<none>"),
                     go_value(selector) if selector else "<none>", go_value(ports) if ports else "<none>",
                     str(meta.get("creationTimestamp") or "")])
    return table(["NAMESPACE", "NAME", "MODE", "SELECTOR", "PORTS", "CREATED"], rows) if rows else "No resources found"
