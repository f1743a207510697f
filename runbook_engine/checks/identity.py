"""Workload identity: ``workload_svid`` (the SVID a workload actually presents) and
``shared_identities`` (workloads that share one service account, hence one identity).

``workload_svid`` runs ``openssl s_client -showcerts -alpn istio -connect <svc>.<ns>.svc:<port>`` in a
probe pod without a proxy: the ``istio`` ALPN makes the server's sidecar (or ztunnel) answer the
handshake itself, so the chain printed is the workload's SVID and its CA. The PEM chain is parsed
with ``cryptography``: the URI SAN (SPIFFE ID) must equal the expected one (by default
``spiffe://<trust-domain>/ns/<ns>/sa/<service account of the workload behind the service>``), the
certificate must be valid for at least ``min_remaining_minutes``, and a TTL above ``max_ttl_hours``
is flagged. A plaintext port answers ``wrong version number``: the workload presents no SVID.

``shared_identities`` groups the workloads that join the mesh (explicit opt-outs are left out: they get
no identity) by service account; a group of several is FLAGged unless listed in ``allowed``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass

from cryptography import x509
from pydantic import Field, field_validator

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.evidence import Finding, conclude, evidence, listing, plural, summary_of, table, worst
from runbook_engine.checks.live import live_view
from runbook_engine.checks.membership import opted_out, workloads_in
from runbook_engine.checks.probe import DEFAULT_TIMEOUT, OPENSSL_IMAGE, ProbeResult, ProbeSpec, run_probes
from runbook_engine.mesh import MeshView
from runbook_engine.mesh.identity import istio_spiffe_id
from runbook_engine.report.verdict import Section, Status, Verdict

PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_TARGET = re.compile(r"^([a-z0-9][a-z0-9\-]*)/([a-z0-9][\w.\-]*):(\d{1,5})$")


class SvidTarget(CheckArgs):
    to: str = Field(description="The server: <ns>/<service>:<port>.")
    spiffe_id: str | None = Field(default=None, description="Expected SPIFFE ID (default: from the trust domain).")
    probe_namespace: str | None = Field(default=None, description="Where the probe runs (default: the server's).")

    @field_validator("to")
    @classmethod
    def _check_to(cls, value: str) -> str:
        if not _TARGET.match(value):
            raise ValueError("to must be <ns>/<service>:<port>")
        return value

    @property
    def parts(self) -> tuple[str, str, int]:
        found = _TARGET.match(self.to)
        assert found is not None  # validated
        return found.group(1), found.group(2), int(found.group(3))


class WorkloadSvidArgs(CheckArgs):
    targets: list[SvidTarget] = Field(min_length=1, description="Servers whose SVID to fetch.")
    trust_domain: str = Field(default="cluster.local", description="Trust domain of the expected SPIFFE IDs.")
    max_ttl_hours: float | None = Field(default=None, gt=0, description="Flag SVIDs valid for longer than this.")
    min_remaining_minutes: float = Field(default=5, ge=0, description="Fail SVIDs that expire sooner than this.")
    probe_timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="Seconds to wait for the probe pods.")


@dataclass(frozen=True)
class Svid:
    """What the leaf certificate of a presented chain says."""

    uri: str
    not_before: dt.datetime
    not_after: dt.datetime
    chain: int

    @property
    def trust_domain(self) -> str:
        return self.uri.removeprefix("spiffe://").split("/", 1)[0]

    @property
    def ttl(self) -> dt.timedelta:
        return self.not_after - self.not_before

    def describe(self, now: dt.datetime) -> str:
        left = int((self.not_after - now).total_seconds() // 60)
        return f"{self.uri or 'no URI SAN'}, TTL {hours(self.ttl)}, {left} min left"


def hours(delta: dt.timedelta) -> str:
    h = delta.total_seconds() / 3600
    return f"{h:g}h" if h >= 1 else f"{delta.total_seconds() / 60:g}m"


def parse_chain(log: str) -> Svid | None:
    """The leaf SVID of the PEM chain an ``openssl s_client -showcerts`` printed, or None."""
    blocks = PEM_BLOCK.findall(log)
    if not blocks:
        return None
    leaf = x509.load_pem_x509_certificate(blocks[0].encode())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    spiffe = next((u for u in uris if u.startswith("spiffe://")), uris[0] if uris else "")
    return Svid(spiffe, leaf.not_valid_before_utc, leaf.not_valid_after_utc, len(blocks))


def shortened(log: str) -> str:
    """The s_client output with each PEM body folded to one line, to keep reports readable."""
    return PEM_BLOCK.sub("-----BEGIN CERTIFICATE----- (PEM elided) -----END CERTIFICATE-----", log)


def expected_id(view: MeshView, target: SvidTarget, trust_domain: str) -> str | None:
    if target.spiffe_id:
        return target.spiffe_id
    ns, name, _ = target.parts
    svc = view.services.get(f"{ns}/{name}")
    backends = view.workloads_for_service(svc) if svc is not None else []
    wl = backends[0] if backends else view.workload(ns, name)
    return istio_spiffe_id(trust_domain, ns, wl.service_account) if wl is not None else None


def openssl_spec(target: SvidTarget, key: str) -> ProbeSpec:
    ns, name, port = target.parts
    script = f"openssl s_client -showcerts -alpn istio -connect {name}.{ns}.svc:{port} </dev/null"
    return ProbeSpec(key, target.probe_namespace or ns, OPENSSL_IMAGE, ("sh", "-c", script))


def judge(target: SvidTarget, svid: Svid | None, result: ProbeResult, want: str | None, args: WorkloadSvidArgs,
          now: dt.datetime) -> Finding:
    if not result.finished:
        return Finding(Status.NO_DATA, target.to, result.error)
    if svid is None:
        plain = "wrong version number" in result.log
        why = "plaintext port: no proxy presents an SVID" if plain else (result.log.strip().splitlines() or ["?"])[-1]
        return Finding(Status.FAIL, target.to, f"no certificate: {why}")
    seen = svid.describe(now)
    if want is not None and svid.uri != want:
        return Finding(Status.FAIL, target.to, f"presents {svid.uri or 'no URI SAN'}, expected {want}")
    if svid.not_after - now < dt.timedelta(minutes=args.min_remaining_minutes):
        return Finding(Status.FAIL, target.to, f"expires too soon: {seen}")
    if args.max_ttl_hours is not None and svid.ttl > dt.timedelta(hours=args.max_ttl_hours):
        return Finding(Status.FLAG, target.to, f"TTL above {args.max_ttl_hours:g}h: {seen}")
    return Finding(Status.PASS, target.to, seen)


@register
class WorkloadSvid(Check[WorkloadSvidArgs]):
    name = "workload_svid"
    section = Section.IDENTITY
    purpose = "Workloads present the SVID they should: SPIFFE ID, trust domain and lifetime, as seen on the wire."
    Args = WorkloadSvidArgs

    def run(self, ctx: CheckContext, args: WorkloadSvidArgs) -> Verdict:
        view = live_view(ctx.cluster)
        specs = [openssl_spec(t, f"{i}/{t.to}") for i, t in enumerate(args.targets)]
        results = run_probes(ctx.cluster, specs, args.probe_timeout)
        findings, proof, seen = [], [], {}
        for target, result in zip(args.targets, results, strict=True):
            svid = parse_chain(result.log) if result.finished else None
            findings.append(judge(target, svid, result, expected_id(view, target, args.trust_domain), args, ctx.now))
            note = f"leaf: {svid.describe(ctx.now)}; chain of {svid.chain}" if svid else result.error
            proof.append(evidence(result.spec.human_command(), shortened(result.log), note))
            if svid is not None:
                seen[target.to] = {"spiffe_id": svid.uri, "ttl_seconds": svid.ttl.total_seconds()}
        status = worst(f.status for f in findings)
        data = {"svids": seen}
        if status is Status.PASS:
            return conclude(self, ctx, status, f"{plural(len(findings), 'workload')} present the expected SVID: "
                            f"{listing(findings, 3)}", proof, data=data)
        what = {Status.FAIL: "wrong or missing SVIDs", Status.FLAG: "SVIDs to note",
                Status.NO_DATA: "not observed"}.get(status, "findings")
        return conclude(self, ctx, status, summary_of(findings, status, what), proof, data=data,
                        hint="check the trust domain (mesh config and SPIRE), the ClusterSPIFFEID template and "
                        "that the workload was restarted into the mesh")


class SharedIdentitiesArgs(CheckArgs):
    namespaces: list[str] = Field(min_length=1, description="Namespaces to look in.")
    allowed: list[str] = Field(default_factory=list,
                               description="Service accounts (<ns>/<sa>) that several workloads may share, e.g. a "
                               "canary's.")


@register
class SharedIdentities(Check[SharedIdentitiesArgs]):
    name = "shared_identities"
    section = Section.IDENTITY
    purpose = "Each workload that joins the mesh has its own service account, so authorization can tell them apart."
    Args = SharedIdentitiesArgs

    def run(self, ctx: CheckContext, args: SharedIdentitiesArgs) -> Verdict:
        view = live_view(ctx.cluster)
        groups: dict[str, list[str]] = defaultdict(list)
        rows = []
        for wl in [w for w in workloads_in(view, args.namespaces) if not opted_out(w)]:
            groups[f"{wl.namespace}/{wl.service_account}"].append(wl.name)
            rows.append([wl.namespace, wl.kind, wl.name, wl.service_account])
        findings = [self._judge(sa, names, args.allowed) for sa, names in sorted(groups.items()) if len(names) > 1]
        proof = [evidence(f"kubectl get deploy,sts,ds -n {ns} -o custom-columns=KIND:.kind,NAME:.metadata.name,"
                          "SERVICEACCOUNT:.spec.template.spec.serviceAccountName",
                          table(["KIND", "NAME", "SERVICEACCOUNT"], [r[1:] for r in rows if r[0] == ns]))
                          for ns in args.namespaces]
        status = worst(f.status for f in findings)
        data = {"shared": {f.subject: groups[f.subject] for f in findings}}
        if status is Status.PASS:
            allowed = f" ({listing(findings)} shared as allowed)" if findings else ""
            return conclude(self, ctx, status, f"{plural(len(groups), 'service account')} for {len(rows)} workloads, "
                            f"none shared{allowed}", proof, data=data)
        default = any(f.subject.endswith("/default") for f in findings if f.status is Status.FLAG)
        return conclude(self, ctx, status, summary_of(findings, Status.FLAG, "service accounts shared by several "
                                                      "workloads, one identity for all"), proof, data=data,
                        hint="give each workload its own ServiceAccount (serviceAccountName) and restart it"
                        + ("; the namespace's 'default' account is the identity of anything that names none"
                           if default else ""))

    @staticmethod
    def _judge(sa: str, names: list[str], allowed: list[str]) -> Finding:
        status = Status.PASS if sa in allowed else Status.FLAG
        return Finding(status, sa, ", ".join(names))
