"""Acceptance: the ambient and Linkerd playbooks run end to end on the demo platform with default-deny
on; every declared flow keeps working and the undeclared paths the inventories list are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import REPO, Platform, exists, proxies, resource, verdicts

pytestmark = pytest.mark.slow

SCENARIO = REPO / "inventory" / "demo" / "scenario.yaml"


def test_ambient_rollout_with_default_deny(tmp_path: Path) -> None:
    platform = Platform(REPO / "inventory" / "demo-ambient", tmp_path / "state", SCENARIO)
    platform.settle()

    done = platform.run("istio-ambient.yml")

    assert done.code == 0, done.output[-3000:]
    final = verdicts(platform.status())
    assert final["every declared flow keeps its expected outcome under default-deny"]["status"] == "pass"
    assert final["undeclared paths are denied"]["status"] == "pass"
    with platform.open() as cluster:
        assert exists(cluster, "security.istio.io/v1", "AuthorizationPolicy", "sre", "default-deny")
        sre = resource(cluster, "v1", "Namespace").get(name="sre")
        assert sre.metadata.labels["istio.io/dataplane-mode"] == "ambient"
        assert proxies(cluster, "sre", "app=portal") and all(p == [] for p in proxies(cluster, "sre", "app=portal"))


def test_linkerd_rollout_with_per_port_authorization_and_default_deny(tmp_path: Path) -> None:
    platform = Platform(REPO / "inventory" / "demo-linkerd", tmp_path / "state", SCENARIO)
    platform.settle()

    done = platform.run("linkerd.yml")

    assert done.code == 0, done.output[-3000:]
    final = verdicts(platform.status())
    assert final["every declared flow keeps its expected outcome under default-deny"]["status"] == "pass"
    assert final["undeclared paths are refused"]["status"] == "pass"
    with platform.open() as cluster:
        assert exists(cluster, "policy.linkerd.io/v1beta3", "Server", "sre", "runbook-api-8080")
        sre = resource(cluster, "v1", "Namespace").get(name="sre")
        assert sre.metadata.annotations["config.linkerd.io/default-inbound-policy"] == "deny"
        assert all(p == ["linkerd-proxy"] for p in proxies(cluster, "sre", "app=runbook-api"))
