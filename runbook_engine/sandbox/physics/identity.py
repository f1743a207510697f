"""Workload identity: certificate authorities that issue real X.509 SVIDs.

Two authorities exist: istiod's self-signed root (Istio's default CA, subject ``O=<trust domain>``)
and SPIRE's (used for a pod when SPIRE is installed and the pod's proxy takes its identity from the
SPIRE agent through the SPIFFE CSI driver — https://istio.io/latest/docs/ops/integrations/spire/).
Leaf SVIDs carry the URI SAN ``spiffe://<trust-domain>/ns/<ns>/sa/<sa>`` and the configured TTL.
CA private keys stay in memory or in files of mode 0600 under the state directory; they are never
logged or returned by any API of this module.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class Authority(StrEnum):
    ISTIOD = "istiod"
    SPIRE = "spire"
    LINKERD = "linkerd"


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def linkerd_identity(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """Linkerd's identity name (https://linkerd.io/2/features/automatic-mtls/)."""
    return f"{service_account}.{namespace}.serviceaccount.identity.linkerd.{trust_domain}"


@dataclass(frozen=True)
class IssuedCert:
    leaf: x509.Certificate
    ca: x509.Certificate

    def chain_pem(self) -> list[str]:
        """The chain as the workload presents it: leaf first, then its CA."""
        return [c.public_bytes(serialization.Encoding.PEM).decode() for c in (self.leaf, self.ca)]

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.leaf.not_valid_after_utc


class CertificateAuthority:
    """A self-signed root for one authority and trust domain; persisted when given a directory."""

    def __init__(self, authority: Authority, trust_domain: str, directory: Path | None = None) -> None:
        self.authority = authority
        self.trust_domain = trust_domain
        path = directory / f"{authority.value}-{trust_domain}.pem" if directory else None
        self._key, self.certificate = _load(path) if path and path.exists() else self._create(path)

    def _create(self, path: Path | None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        org = "SPIFFE" if self.authority is Authority.SPIRE else self.trust_domain
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{self.trust_domain}")]
                ),
                critical=False,
            )
        )
        cert = builder.sign(key, hashes.SHA256())
        if path is not None:
            _save(path, key, cert)
        return key, cert

    def issue(self, spiffe: str, ttl: dt.timedelta, dns_name: str | None = None) -> IssuedCert:
        """A leaf SVID for ``spiffe`` valid from now for exactly ``ttl``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe)]
        if dns_name:
            sans.append(x509.DNSName(dns_name))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCert(leaf, self.certificate)


class IdentityIssuer:
    """Issues and caches SVIDs per (authority, trust domain, namespace, service account).

    A cached SVID is reused until it expires; ``renew=False`` (istiod down, SPIRE agent gone) keeps
    the old one even when expired, as a proxy that cannot reach its CA does.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._cas: dict[tuple[Authority, str], CertificateAuthority] = {}
        self._leaves: dict[tuple[Authority, str, str, str], IssuedCert] = {}
        self._lock = threading.Lock()

    def ca(self, authority: Authority, trust_domain: str) -> CertificateAuthority:
        with self._lock:
            key = (authority, trust_domain)
            if key not in self._cas:
                self._cas[key] = CertificateAuthority(authority, trust_domain, self.directory)
            return self._cas[key]

    def held(
        self, authority: Authority, trust_domain: str, namespace: str, service_account: str
    ) -> IssuedCert | None:
        """The SVID last issued for this identity, if any (expired or not)."""
        with self._lock:
            return self._leaves.get((authority, trust_domain, namespace, service_account))

    def svid(
        self,
        authority: Authority,
        trust_domain: str,
        namespace: str,
        service_account: str,
        ttl: dt.timedelta,
        *,
        renew: bool = True,
    ) -> IssuedCert | None:
        """The SVID the workload holds now, or None when it never got one and cannot get one."""
        ca = self.ca(authority, trust_domain)
        key = (authority, trust_domain, namespace, service_account)
        with self._lock:
            held = self._leaves.get(key)
        now = dt.datetime.now(dt.UTC)
        if held is not None and (not held.expired(now) or not renew):
            return held
        if not renew:
            return None
        dns = (
            linkerd_identity(namespace, service_account, trust_domain)
            if authority is Authority.LINKERD
            else None
        )
        issued = ca.issue(spiffe_id(trust_domain, namespace, service_account), ttl, dns_name=dns)
        with self._lock:
            self._leaves[key] = issued
        return issued


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _save(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(blob)
    tmp.replace(path)


def _load(path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    blob = path.read_bytes()
    key = serialization.load_pem_private_key(blob, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC CA key")
    return key, x509.load_pem_x509_certificate(blob[blob.index(b"-----BEGIN CERTIFICATE-----") :])
