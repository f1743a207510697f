"""Workload identity: an ``openssl s_client`` probe pod logs the real chain a meshed workload presents."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from runbook_engine.kube.flow import Flow, Outcome
from runbook_engine.sandbox.physics.identity import Authority, CertificateAuthority
from runbook_engine.sandbox.runtime import ContainerState

_spec = importlib.util.spec_from_file_location("physics_world", Path(__file__).parent / "physics_cases" / "world.py")
assert _spec and _spec.loader
_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_world)
World = _world.World

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def _openssl(world: Any, target: str) -> Any:
    pod = world.workload(
        "tools", f"probe{len(world.store.list('v1', 'Pod'))}", service=False, image="alpine/openssl", args=[]
    )
    pod["spec"]["containers"][0]["command"] = ["sh", "-c", f"openssl s_client -showcerts -connect {target} </dev/null"]
    return world.physics.runtime.run_container(world.store, pod, pod["spec"]["containers"][0])


def _chain(log: str) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(m.group(0).encode()) for m in PEM.finditer(log)]


def _uri_sans(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    )


def _verify(leaf: x509.Certificate, ca: x509.Certificate) -> None:
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    leaf.verify_directly_issued_by(ca)


def test_istiod_ca_issues_the_svid_with_mesh_trust_domain_and_ttl(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.istiod(trust_domain="corp.example", ttl="12h")
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api", sa="api-sa")
    result = _openssl(world, "api.sre.svc.cluster.local:8080")
    assert result.state is ContainerState.COMPLETED
    leaf, ca = _chain(result.log)
    assert _uri_sans(leaf) == ["spiffe://corp.example/ns/sre/sa/api-sa"]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=12)
    assert ca.subject.rfc4514_string() == "O=corp.example"
    _verify(leaf, ca)


def test_default_ttl_is_24h_and_trust_domain_cluster_local(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.istiod()
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api")
    leaf, _ = _chain(_openssl(world, "api.sre:8080").log)
    assert _uri_sans(leaf) == ["spiffe://cluster.local/ns/sre/sa/api"]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=24)


def test_spire_issues_the_svid_when_istio_uses_spire(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.istiod(trust_domain="example.org", spire_template=True)
    world.spire(trust_domain="example.org", ttl="1h", agent_nodes=("node-1",))
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api")
    leaf, ca = _chain(_openssl(world, "api.sre:8080").log)
    assert _uri_sans(leaf) == ["spiffe://example.org/ns/sre/sa/api"]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=1)
    assert ca.subject.rfc4514_string() == "O=SPIFFE"
    _verify(leaf, ca)
    istiod_ca = CertificateAuthority(Authority.ISTIOD, "example.org", tmp_path).certificate
    assert ca != istiod_ca


def test_no_svid_without_spire_agent_and_plaintext_port_has_no_certificate(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.istiod(spire_template=True)
    world.spire(agent_nodes=("node-1",))
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api", node="node-2")
    world.workload("legacy", "db")
    assert _openssl(world, "api.sre:8080").state is ContainerState.FAILED
    plain = _openssl(world, "db.legacy:8080")
    assert plain.exit_code == 1 and "wrong version number" in plain.log and not _chain(plain.log)


def test_ca_key_persists_in_the_state_directory_with_private_mode(tmp_path: Path) -> None:
    first = CertificateAuthority(Authority.ISTIOD, "cluster.local", tmp_path)
    again = CertificateAuthority(Authority.ISTIOD, "cluster.local", tmp_path)
    assert first.certificate == again.certificate
    (path,) = tmp_path.glob("istiod-*.pem")
    assert path.stat().st_mode & 0o077 == 0


def test_istiod_down_stops_renewal_and_an_expired_certificate_breaks_mtls(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.istiod(ttl="1s")
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api")
    world.workload("sre", "web")
    flow = Flow.model_validate({"from": "sre/web", "to": "sre/api:8080"})
    first, _ = _chain(_openssl(world, "api.sre:8080").log)
    world.physics.faults.add({"istiod_down": True})
    assert world.physics.evaluate(flow).outcome is Outcome.OK  # the held certificate is still valid
    time.sleep(1.1)
    again, _ = _chain(_openssl(world, "api.sre:8080").log)
    assert again == first and again.not_valid_after_utc < dt.datetime.now(dt.UTC)  # not renewed
    result = world.physics.evaluate(flow)
    assert result.outcome is Outcome.TLS_ERROR and "istiod is down" in result.reasons[0]
    world.physics.faults.clear()
    renewed, _ = _chain(_openssl(world, "api.sre:8080").log)
    assert renewed.not_valid_after_utc > dt.datetime.now(dt.UTC)
    assert world.physics.evaluate(flow).outcome is Outcome.OK
