"""Real X.509 material for the identity and Linkerd tests, made with ``cryptography``."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Key = ec.EllipticCurvePrivateKey


def _name(cn: str | None, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    return x509.Name(attrs)


def certificate(subject: x509.Name, key: Key, issuer: x509.Name, issuer_key: Key, start: dt.datetime,
                end: dt.datetime, *, ca: bool, uri: str | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if uri:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                                        critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def ca(cn: str, start: dt.datetime, end: dt.datetime, org: str | None = None) -> tuple[x509.Certificate, Key]:
    key = new_key()
    return certificate(_name(cn, org), key, _name(cn, org), key, start, end, ca=True), key


def svid_chain(uri: str, start: dt.datetime, end: dt.datetime) -> str:
    """What ``openssl s_client -showcerts`` prints for a workload presenting this SVID."""
    root, root_key = ca("", start - dt.timedelta(days=1), end + dt.timedelta(days=365), org="SPIFFE")
    leaf = certificate(x509.Name([]), new_key(), root.subject, root_key, start, end, ca=False, uri=uri)
    return (f"CONNECTED(00000003)\n---\nCertificate chain\n 0 s:\n   i:O = SPIFFE\n{pem(leaf)} 1 s:O = SPIFFE\n"
            f"   i:O = SPIFFE\n{pem(root)}---\nServer certificate\nsubject=\nissuer=O = SPIFFE\n---\nDONE\n")
