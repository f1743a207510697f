"""``linkerd_ready``: the Linkerd control plane is ready and its certificates are valid.

The trust anchor is read from ConfigMap ``linkerd-identity-trust-roots`` (key ``ca-bundle.crt``) and
the issuer certificate from Secret ``linkerd-identity-issuer`` (``crt.pem``, or ``tls.crt`` under
the ``kubernetes.io/tls`` scheme), as Linkerd stores them
(https://linkerd.io/2/tasks/generate-certificates/ and https://linkerd.io/2/tasks/rotating_identity_certificates/).
Only certificates are parsed (with ``cryptography``); the issuer's private key is never read into
evidence. An expired certificate fails; one that expires within ``warn_days`` is flagged, since an
expired issuer stops every proxy from renewing its identity.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import Finding, conclude, evidence, listing, worst
from runbook_engine.kube.health import rollout_state
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict

TRUST_ROOTS = ("linkerd-identity-trust-roots", "ca-bundle.crt")
ISSUER = "linkerd-identity-issuer"
ISSUER_KEYS = ("crt.pem", "tls.crt")
OPENSSL_DATES = "openssl x509 -noout -subject -enddate"


class LinkerdReadyArgs(CheckArgs):
    namespace: str = Field(default="linkerd", description="Namespace of the Linkerd control plane.")
    deployments: list[str] = Field(default=["linkerd-identity", "linkerd-destination", "linkerd-proxy-injector"],
                                   description="Control-plane Deployments that must be ready.")
    warn_days: int = Field(default=30, ge=0, description="Flag certificates that expire within this many days.")


def load_certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode()) if "-----BEGIN CERTIFICATE-----" in pem else []


def validity(label: str, cert: x509.Certificate, now: dt.datetime, warn_days: int) -> Finding:
    """PASS, FLAG when it expires within ``warn_days``, FAIL when expired or not yet valid."""
    left = cert.not_valid_after_utc - now
    subject = cert.subject.rfc4514_string() or "(empty subject)"
    when = f"{subject}, expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if left <= dt.timedelta(0):
        return Finding(Status.FAIL, label, f"expired: {when}")
    if cert.not_valid_before_utc > now:
        return Finding(Status.FAIL, label, f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if left < dt.timedelta(days=warn_days):
        return Finding(Status.FLAG, label, f"expires in {left.days} days: {when}")
    return Finding(Status.PASS, label, f"valid for {left.days} more days: {when}")


def dates_output(certs: list[x509.Certificate]) -> str:
    """What ``openssl x509 -noout -subject -enddate`` prints for each certificate."""
    return "\n".join(f"subject={c.subject.rfc4514_string()}\nnotAfter={c.not_valid_after_utc:%b %d %H:%M:%S %Y} GMT"
                     for c in certs)


def issuer_pem(secret: Mapping[str, Any]) -> tuple[str, str]:
    """(key, PEM text) of the issuer certificate in the Secret; never the private key."""
    data = secret.get("data") or {}
    for key in ISSUER_KEYS:
        if key in data:
            try:
                return key, base64.b64decode(str(data[key])).decode()
            except (binascii.Error, UnicodeDecodeError):
                return key, ""
    return "", ""


@register
class LinkerdReady(Check[LinkerdReadyArgs]):
    name = "linkerd_ready"
    section = Section.FOUNDATION
    purpose = "The Linkerd control plane is ready and its trust anchor and issuer certificate are valid."
    Args = LinkerdReadyArgs

    def run(self, ctx: CheckContext, args: LinkerdReadyArgs) -> Verdict:
        findings, proof = self._deployments(ctx, args)
        for finding, item in (self._anchor(ctx, args), self._issuer(ctx, args)):
            findings.append(finding)
            proof.append(item)
        status = worst(f.status for f in findings)
        data = {"findings": [str(f) for f in findings]}
        if status is Status.PASS:
            return conclude(self, ctx, status, f"Linkerd control plane ready; {findings[-2]}; {findings[-1]}", proof,
                            data=data)
        bad = [f for f in findings if f.status is status]
        return conclude(self, ctx, status, f"Linkerd: {listing(bad)}", proof, data=data,
                        hint="rotate the issuer (and, before it expires, the trust anchor): "
                        "https://linkerd.io/2/tasks/manually-rotating-control-plane-tls-credentials/"
                        if any("expire" in f.detail for f in bad) else
                        f"kubectl get deployments -n {args.namespace}; linkerd check")

    @staticmethod
    def _deployments(ctx: CheckContext, args: LinkerdReadyArgs) -> tuple[list[Finding], list[Evidence]]:
        findings, lines = [], []
        for name in args.deployments:
            dep = ctx.cluster.get(ObjectRef("apps/v1", "Deployment", args.namespace, name))
            detail = rollout_state(dep).detail if dep is not None else "not found"
            done = dep is not None and rollout_state(dep).done
            findings.append(Finding(Status.PASS if done else Status.FAIL, name, detail))
            lines.append(f"{name}: {detail}")
        return findings, [evidence(f"kubectl get deployments -n {args.namespace} "
                                   f"{' '.join(args.deployments)}", "\n".join(lines))]

    def _anchor(self, ctx: CheckContext, args: LinkerdReadyArgs) -> tuple[Finding, Evidence]:
        name, key = TRUST_ROOTS
        command = (f"kubectl get configmap {name} -n {args.namespace} -o jsonpath='{{.data.ca-bundle\\.crt}}' | "
                   f"{OPENSSL_DATES}")
        cm = ctx.cluster.get(ObjectRef("v1", "ConfigMap", args.namespace, name))
        certs = load_certificates(str(((cm or {}).get("data") or {}).get(key) or ""))
        return self._judge("trust anchor", certs, ctx, args), evidence(command, dates_output(certs) or "not found")

    def _issuer(self, ctx: CheckContext, args: LinkerdReadyArgs) -> tuple[Finding, Evidence]:
        secret = ctx.cluster.get(ObjectRef("v1", "Secret", args.namespace, ISSUER))
        key, pem = issuer_pem(secret or {})
        certs = load_certificates(pem)
        jsonpath_key = (key or ISSUER_KEYS[0]).replace(".", "\\.")
        command = (f"kubectl get secret {ISSUER} -n {args.namespace} -o jsonpath='{{.data.{jsonpath_key}}}' | "
                   f"base64 -d | {OPENSSL_DATES}")
        return self._judge("issuer", certs[:1], ctx, args), evidence(command, dates_output(certs[:1]) or "not found")

    @staticmethod
    def _judge(label: str, certs: list[x509.Certificate], ctx: CheckContext, args: LinkerdReadyArgs) -> Finding:
        if not certs:
            return Finding(Status.FAIL, label, "no certificate found")
        found = [validity(label, c, ctx.now, args.warn_days) for c in certs]
        return max(found, key=lambda f: (f.status is Status.FAIL, f.status is Status.FLAG))
