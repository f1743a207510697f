"""Probe pods: containers running ``curl`` or ``openssl s_client`` execute their call as a flow.

A pod whose container image is ``curlimages/curl`` (entrypoint ``curl``) or whose command starts
with ``curl`` / ``openssl s_client`` (directly or under ``sh -c``) calls its target from the pod's
own namespace, service account and dataplane, and its log holds what the real tool prints:

- curl: ``-w '%{http_code}'`` output, the status line with ``-v``/``-i``/``-I``, Envoy's 403 body
  ``RBAC: access denied``, ``curl: (56) Recv failure: Connection reset by peer`` (exit 56) on a
  reset (``-s`` without ``-S`` hides the message, as curl does). A client with a sidecar gets
  HTTP 503 from its own proxy when the upstream resets or fails TLS, as with real Envoy.
- openssl s_client: against a meshed workload port, the certificate chain its proxy presents
  (the leaf SVID and its CA, PEM); against a plaintext port, ``wrong version number``; hosts outside
  the cluster are unreachable (the sandbox emulates no external servers).
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from runbook_engine.kube.flow import Outcome, Protocol
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.connection import ConnectionPhysics, FlowResult, resolve_service
from runbook_engine.sandbox.physics.identity import IssuedCert
from runbook_engine.sandbox.physics.svid import IdentityService
from runbook_engine.sandbox.physics.topology import Dataplane, MeshView, Target, pod_dataplane
from runbook_engine.sandbox.runtime import ContainerOutcome, ContainerState

SHELLS = frozenset({"sh", "/bin/sh", "bash", "/bin/bash", "ash"})
REASONS = {200: "OK", 403: "Forbidden", 404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable"}
ENVOY_503 = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"


class Tool(StrEnum):
    CURL = "curl"
    OPENSSL = "openssl"


@dataclass(frozen=True)
class ProbeCommand:
    tool: Tool
    host: str
    port: int
    path: str = "/"
    method: str = "GET"
    flags: frozenset[str] = frozenset()
    write_out: str | None = None
    timeout: float | None = None

    def has(self, *flags: str) -> bool:
        return any(f in self.flags for f in flags)


def _tokens(container: o.Obj) -> list[str]:
    tokens = [str(t) for t in (container.get("command") or []) + (container.get("args") or [])]
    if tokens and tokens[0] in SHELLS and "-c" in tokens:
        script = tokens[tokens.index("-c") + 1] if tokens.index("-c") + 1 < len(tokens) else ""
        tokens = shlex.split(script.split("&&")[0].split(";")[0].split("|")[0])
    if not container.get("command") and str(container.get("image", "")).startswith("curlimages/curl"):
        tokens = ["curl", *tokens]
    return tokens


def parse_probe(container: o.Obj) -> ProbeCommand | None:
    """The probe call a container makes, or None when it is not a probe container."""
    tokens = _tokens(container)
    if not tokens:
        return None
    tool = tokens[0].rsplit("/", 1)[-1]
    if tool == "curl":
        return _parse_curl(tokens[1:])
    if tool == "openssl" and len(tokens) > 1 and tokens[1] == "s_client":
        return _parse_openssl(tokens[2:])
    return None


_CURL_VALUE_FLAGS = frozenset(
    {
        "-o",
        "--output",
        "-w",
        "--write-out",
        "-X",
        "--request",
        "-m",
        "--max-time",
        "--connect-timeout",
        "-H",
        "--header",
        "-d",
        "--data",
        "-u",
        "--user",
        "--resolve",
        "--cacert",
        "--cert",
        "--key",
    }
)


def _parse_curl(args: list[str]) -> ProbeCommand | None:
    flags: set[str] = set()
    values: dict[str, str] = {}
    url = ""
    it = iter(args)
    for arg in it:
        if arg in _CURL_VALUE_FLAGS:
            values[arg] = next(it, "")
        elif arg.startswith("--"):
            flags.add(arg)
        elif arg.startswith("-") and len(arg) > 1:
            flags.update(f"-{ch}" for ch in arg[1:])
        else:
            url = arg
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    default_port = 443 if parts.scheme == "https" else 80
    if values.get("-o", values.get("--output")) == "/dev/null":
        flags.add("-o/dev/null")
    timeout = values.get("-m") or values.get("--max-time") or values.get("--connect-timeout")
    return ProbeCommand(
        Tool.CURL,
        parts.hostname or "",
        parts.port or default_port,
        parts.path or "/",
        (values.get("-X") or values.get("--request") or ("HEAD" if "-I" in flags else "GET")).upper(),
        frozenset(flags),
        values.get("-w") or values.get("--write-out"),
        float(timeout) if timeout else None,
    )


def _parse_openssl(args: list[str]) -> ProbeCommand | None:
    if "-connect" not in args or args.index("-connect") + 1 >= len(args):
        return None
    host, _, port = args[args.index("-connect") + 1].rpartition(":")
    return ProbeCommand(
        Tool.OPENSSL, host, int(port or 443), flags=frozenset(a for a in args if a.startswith("-"))
    )


def locate(view: MeshView, pod: o.Obj, host: str, port: int) -> tuple[Target | None, str, int]:
    """Resolve a host the way cluster DNS would; returns (target, error, curl exit code)."""
    try:
        ipaddress.ip_address(host)
        target_pod = view.pod_by_ip(host)
        if target_pod is None:
            return None, f"Failed to connect to {host} port {port}: Couldn't connect to server", 7
        return (
            Target(
                host=host,
                port=port,
                namespace=o.namespace_of(target_pod),
                target_port=port,
                pod=target_pod,
                workload=o.workload_name(target_pod),
                dataplane=pod_dataplane(target_pod),
                service=o.workload_name(target_pod),
            ),
            "",
            0,
        )
    except ValueError:
        pass
    labels = host.removesuffix(".cluster.local").removesuffix(".svc").split(".")
    if len(labels) == 1:
        labels.append(o.namespace_of(pod))
    if len(labels) == 2 and labels[1] in view.namespaces:
        target, why = resolve_service(view, labels[1], labels[0], port)
        if target is None:
            code = 6 if "does not exist" in why else 7
            msg = (
                f"Could not resolve host: {host}"
                if code == 6
                else (f"Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server")
            )
            return None, msg, code
        return target, "", 0
    return Target(host=host, port=port, external=True), "", 0


class ProbeRunner:
    """Runs probe containers against the sandbox's physics."""

    def __init__(self, identities: IdentityService) -> None:
        self.identities = identities

    def run(self, view: MeshView, pod: o.Obj, probe: ProbeCommand) -> ContainerOutcome:
        target, error, code = locate(view, pod, probe.host, probe.port)
        if target is None:
            return _fail(
                code,
                f"curl: ({code}) {error}"
                if probe.tool is Tool.CURL
                else f"{probe.host}:{probe.port}: Name or service not known\nconnect:errno=2",
                probe,
            )
        if probe.tool is Tool.OPENSSL:
            return self._openssl(view, pod, target, probe)
        physics = ConnectionPhysics(view, self.identities)
        result = physics.connect(view.peer_for_pod(pod), target, Protocol.HTTP, probe.path, probe.method)
        return render_curl(probe, result)

    def _openssl(self, view: MeshView, pod: o.Obj, target: Target, probe: ProbeCommand) -> ContainerOutcome:
        if target.external:  # the sandbox emulates no servers outside the cluster
            return ContainerOutcome(
                ContainerState.FAILED, 1, "Error", "connect: Network is unreachable\nconnect:errno=101\n"
            )
        if target.pod is None or not (target.dataplane.istio or target.dataplane is Dataplane.LINKERD):
            return ContainerOutcome(ContainerState.FAILED, 1, "Error", _openssl_plaintext(probe))
        if target.dataplane is Dataplane.AMBIENT and o.node_of(target.pod) not in view.ztunnel_nodes:
            return ContainerOutcome(
                ContainerState.FAILED, 1, "Error", "CONNECTED(00000003)\nwrite:errno=104\n"
            )
        cert = self.identities.certificate(view, target.pod)
        if cert is None:
            return ContainerOutcome(
                ContainerState.FAILED, 1, "Error", "CONNECTED(00000003)\nwrite:errno=104\n"
            )
        return ContainerOutcome(ContainerState.COMPLETED, 0, "Completed", render_openssl(cert, probe))


def _fail(code: int, message: str, probe: ProbeCommand) -> ContainerOutcome:
    out = ""
    if probe.write_out:
        out += _write_out(probe.write_out, 0)
    if probe.tool is not Tool.CURL or not probe.has("-s", "--silent") or probe.has("-S", "--show-error"):
        out += message + "\n"
    return ContainerOutcome(ContainerState.FAILED, code, "Error", out)


def _write_out(fmt: str, status: int) -> str:
    return (
        fmt.replace("%{http_code}", f"{status:03d}")
        .replace("%{response_code}", f"{status:03d}")
        .replace("\\n", "\n")
    )


def render_curl(probe: ProbeCommand, result: FlowResult) -> ContainerOutcome:
    """What curl prints and exits with for this result."""
    if result.http_status == 0:
        return _curl_error(probe, result.outcome)
    return _curl_response(probe, result)


def _curl_error(probe: ProbeCommand, outcome: Outcome) -> ContainerOutcome:
    if outcome is Outcome.HANG and probe.timeout is None:
        return ContainerOutcome(ContainerState.HANGING, reason="Running")
    if outcome is Outcome.TLS_ERROR:
        where = f"{probe.host}:{probe.port}"
        return _fail(
            35, f"curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to {where} ", probe
        )
    if outcome is Outcome.HANG:
        millis = int((probe.timeout or 0) * 1000)
        return _fail(28, f"curl: (28) Connection timed out after {millis} milliseconds", probe)
    return _fail(56, "curl: (56) Recv failure: Connection reset by peer", probe)


def _curl_response(probe: ProbeCommand, result: FlowResult) -> ContainerOutcome:
    status = result.http_status
    envoy = any(
        side is not None and side.dataplane is Dataplane.SIDECAR for side in (result.client, result.target)
    )
    status_line = f"HTTP/1.1 {status} {REASONS.get(status, '')}".rstrip()
    server = ["server: envoy"] if envoy else []
    lines: list[str] = []
    if probe.has("-v", "--verbose"):
        lines += [
            f"*   Trying {probe.host}:{probe.port}...",
            f"* Connected to {probe.host} port {probe.port}",
            f"> {probe.method} {probe.path} HTTP/1.1",
            f"> Host: {probe.host}:{probe.port}",
            ">",
            f"< {status_line}",
            *(f"< {h}" for h in server),
            "<",
        ]
    elif probe.has("-i", "-I", "--include", "--head"):
        lines += [status_line, *server, ""]
    out = "\n".join(lines) + ("\n" if lines else "")
    if not probe.has("-o/dev/null") and probe.method != "HEAD":
        out += {403: "RBAC: access denied", 503: ENVOY_503}.get(status, "")
    if probe.write_out:
        out += _write_out(probe.write_out, status)
    if probe.has("-f", "--fail") and status >= 400:
        quiet = probe.has("-s", "--silent") and not probe.has("-S", "--show-error")
        message = "" if quiet else f"curl: (22) The requested URL returned error: {status}\n"
        return ContainerOutcome(ContainerState.FAILED, 22, "Error", out + message)
    return ContainerOutcome(ContainerState.COMPLETED, 0, "Completed", out)


_SHORT_NAMES = {NameOID.ORGANIZATION_NAME: "O", NameOID.COMMON_NAME: "CN", NameOID.COUNTRY_NAME: "C"}


def _name(cert: x509.Certificate, subject: bool) -> str:
    """A name as openssl prints it (``O = cluster.local``); an SVID's subject is empty."""
    name = cert.subject if subject else cert.issuer
    return ", ".join(f"{_SHORT_NAMES.get(a.oid, a.oid.dotted_string)} = {a.value!s}" for a in name)


def render_openssl(cert: IssuedCert, probe: ProbeCommand) -> str:
    """What ``openssl s_client [-showcerts] -connect host:port`` prints for this chain."""
    pems = cert.chain_pem()
    chain = [cert.leaf, cert.ca]
    lines = [
        "CONNECTED(00000003)",
        f"depth=1 {_name(cert.ca, True)}",
        "verify error:num=19:self-signed certificate in certificate chain",
        "---",
        "Certificate chain",
    ]
    for i, c in enumerate(chain):
        lines += [
            f" {i} s:{_name(c, True)}",
            f"   i:{_name(c, False)}",
            f"   v:NotBefore: {c.not_valid_before_utc:%b %d %H:%M:%S %Y} GMT; "
            f"NotAfter: {c.not_valid_after_utc:%b %d %H:%M:%S %Y} GMT",
        ]
        if probe.has("-showcerts"):
            lines.append(pems[i].rstrip("\n"))
    lines += ["---", "Server certificate"]
    if not probe.has("-showcerts"):
        lines.append(cert.leaf.public_bytes(serialization.Encoding.PEM).decode().rstrip("\n"))
    lines += [
        f"subject={_name(cert.leaf, True)}",
        f"issuer={_name(cert.leaf, False)}",
        "---",
        f"Acceptable client certificate CA names\n{_name(cert.ca, True)}",
        "---",
        "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384",
        "Verify return code: 19 (self-signed certificate in certificate chain)",
        "---",
        "DONE",
    ]
    return "\n".join(lines) + "\n"


def _openssl_plaintext(probe: ProbeCommand) -> str:
    return (
        "CONNECTED(00000003)\n"
        "40F7C2B7E17F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:"
        "../ssl/record/ssl3_record.c:354:\n---\nno peer certificate available\n---\n"
        "No client certificate CA names sent\n---\n"
    )
