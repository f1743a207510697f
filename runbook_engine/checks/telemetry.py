"""``mtls_share``: the share of requests that arrive over mutual TLS, per namespace, from Istio telemetry.

Asks Prometheus (the run's ``prometheus_url``) for the requests each destination namespace received
over the window, by ``connection_security_policy`` as the server-side proxy reports it
(``reporter="destination"``; ``mutual_tls`` or ``none``,
https://istio.io/latest/docs/reference/config/metrics/), and compares the mutual-TLS share with the
namespace's threshold. A namespace without any request in the window is NO_DATA, never a pass: the
checkpoint's ``no_data`` policy decides. Without a Prometheus URL the check is skipped; credentials in
the URL are sent as basic authentication and never shown in evidence.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import Finding, conclude, evidence, summary_of, table, without_credentials, worst
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

MUTUAL_TLS = "mutual_tls"
_WINDOW = re.compile(r"^\d+[smhd]$")
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9\-]*$")


class MtlsShareArgs(CheckArgs):
    namespaces: list[str] = Field(min_length=1, description="Destination namespaces to measure.")
    min_percent: float = Field(default=100, ge=0, le=100, description="Required mTLS share, in percent.")
    thresholds: dict[str, float] = Field(default_factory=dict, description="Per-namespace required share (percent).")
    window: str = Field(default="5m", description="PromQL range, e.g. 5m or 1h.")
    timeout: float = Field(default=10, gt=0, description="Seconds to wait for Prometheus.")

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        if not _WINDOW.match(value):
            raise ValueError("window must be a PromQL duration such as 5m or 1h")
        return value

    @field_validator("namespaces")
    @classmethod
    def _check_namespaces(cls, value: list[str]) -> list[str]:
        bad = [ns for ns in value if not _NAMESPACE.match(ns)]
        if bad:
            raise ValueError(f"not namespace names: {', '.join(bad)}")
        return value

    def required(self, ns: str) -> float:
        return self.thresholds.get(ns, self.min_percent)


def promql(args: MtlsShareArgs) -> str:
    namespaces = "|".join(args.namespaces)
    return ("sum by (destination_workload_namespace, connection_security_policy) (increase(istio_requests_total{"
            f'reporter="destination",destination_workload_namespace=~"{namespaces}"}}[{args.window}]))')


def query(base: str, expr: str, timeout: float) -> list[Mapping[str, Any]]:
    """The vector a Prometheus instant query returns; raises ``ValueError`` on a malformed answer.

    Credentials in the URL (``https://user:pass@host``) are sent as HTTP basic authentication."""
    parts = urllib.parse.urlsplit(base)
    url = f"{without_credentials(base).rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    request = urllib.request.Request(url)
    if parts.username:
        token = base64.b64encode(f"{urllib.parse.unquote(parts.username)}:"
                                 f"{urllib.parse.unquote(parts.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = json.loads(response.read().decode())
    if body.get("status") != "success":
        raise ValueError(f"Prometheus answered {body.get('status')}: {body.get('error', '')}")
    result = (body.get("data") or {}).get("result")
    if not isinstance(result, list):
        raise ValueError("Prometheus answered without a result vector")
    return result


def shares(result: list[Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per namespace: (requests over mutual TLS, all requests)."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for sample in result:
        metric = sample.get("metric") or {}
        value = float((sample.get("value") or [0, "0"])[1])
        entry = totals[str(metric.get("destination_workload_namespace", ""))]
        entry[1] += value
        if metric.get("connection_security_policy") == MUTUAL_TLS:
            entry[0] += value
    return {ns: (m, t) for ns, (m, t) in totals.items()}


def judge(ns: str, observed: Mapping[str, tuple[float, float]], required: float) -> Finding:
    mtls, total = observed.get(ns, (0.0, 0.0))
    if total <= 0:
        return Finding(Status.NO_DATA, ns, "no requests in the window")
    share = 100 * mtls / total
    seen = f"{share:.1f}% of {total:.0f} requests over mTLS, required {required:g}%"
    return Finding(Status.PASS if share >= required else Status.FAIL, ns, seen)


def share_table(namespaces: list[str], observed: Mapping[str, tuple[float, float]]) -> str:
    rows = []
    for ns in namespaces:
        mtls, total = observed.get(ns, (0.0, 0.0))
        rows.append([ns, f"{mtls:.0f}", f"{total:.0f}"])
    return table(["NAMESPACE", "MUTUAL_TLS", "ALL"], rows)


@register
class MtlsShare(Check[MtlsShareArgs]):
    name = "mtls_share"
    section = Section.TELEMETRY
    purpose = "The share of requests each namespace receives over mutual TLS meets its threshold (Istio telemetry)."
    Args = MtlsShareArgs

    def run(self, ctx: CheckContext, args: MtlsShareArgs) -> Verdict:
        if not ctx.prometheus_url:
            return conclude(self, ctx, Status.SKIP, "no Prometheus URL configured",
                            hint="set prometheus_url in the inventory to measure the mTLS share")
        expr = promql(args)
        where = without_credentials(ctx.prometheus_url).rstrip("/")
        command = f"curl -sG '{where}/api/v1/query' --data-urlencode 'query={expr}'"
        try:
            result = query(ctx.prometheus_url, expr, args.timeout)
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            return conclude(self, ctx, Status.NO_DATA, f"Prometheus query failed: {exc}", [evidence(command, str(exc))],
                            hint="check the Prometheus URL and that it scrapes the Istio proxies")
        observed = shares(result)
        findings = [judge(ns, observed, args.required(ns)) for ns in args.namespaces]
        proof = [evidence(command, share_table(args.namespaces, observed), note=f"{len(result)} series")]
        data = {ns: {"mtls": m, "total": t} for ns, (m, t) in observed.items()}
        return self._conclude(ctx, args, findings, proof, data)

    def _conclude(self, ctx: CheckContext, args: MtlsShareArgs, findings: list[Finding], proof: list[Evidence],
                  data: dict[str, Any]) -> Verdict:
        status = worst(f.status for f in findings)
        if status is Status.PASS:
            return conclude(self, ctx, status, "; ".join(f"{f.subject}: {f.detail}" for f in findings), proof,
                            data=data)
        if status is Status.NO_DATA:
            return conclude(self, ctx, status, summary_of(findings, status, "namespaces without telemetry"), proof,
                            data=data, hint="no traffic in the window, or Prometheus does not scrape the proxies: "
                            "widen 'window' or check the scrape configuration")
        return conclude(self, ctx, status, summary_of(findings, Status.FAIL, "namespaces below their mTLS share"),
                        proof, data=data, hint="find the plaintext callers: sum by (source_workload, "
                        "source_workload_namespace) (increase(istio_requests_total{connection_security_policy=\"none\"}"
                        f"[{args.window}]))")
