"""Istio telemetry for scenario flows: exposition format, counters that grow, mTLS share changes."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from runbook_engine.kube.flow import Flow
from runbook_engine.sandbox.physics.telemetry import TrafficMetrics

_spec = importlib.util.spec_from_file_location("physics_world", Path(__file__).parent / "physics_cases" / "world.py")
assert _spec and _spec.loader
_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_world)
World = _world.World

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\} (?P<value>[0-9.eE+-]+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """A strict reader of the exposition format: every line is a comment or a well-formed sample."""
    out = []
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not exposition format: {line!r}"
        labels = dict(LABEL.findall(m.group("labels")))
        out.append((m.group("name"), labels, float(m.group("value"))))
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def mtls_share(samples: list[tuple[str, dict[str, str], float]], before: dict[tuple[Any, ...], float]) -> float:
    """Share of destination-reported requests into ``sre`` with mTLS since ``before`` (a rate, as PromQL)."""
    total = mtls = 0.0
    for name, labels, value in samples:
        if name != "istio_requests_total" or labels["reporter"] != "destination":
            continue
        if labels["destination_workload_namespace"] != "sre":
            continue
        delta = value - before.get(tuple(sorted(labels.items())), 0.0)
        total += delta
        if labels["connection_security_policy"] == "mutual_tls":
            mtls += delta
    return mtls / total if total else float("nan")


def _snapshot(samples: list[tuple[str, dict[str, str], float]]) -> dict[tuple[Any, ...], float]:
    return {tuple(sorted(labels.items())): value for _, labels, value in samples}


def test_metrics_grow_with_time_and_mtls_share_rises_when_the_caller_is_meshed() -> None:
    world = World()
    world.istiod()
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api")
    world.workload("legacy", "web")
    world.workload("legacy", "db", port=5432)
    clock = Clock()
    flows = [
        Flow.model_validate(f)
        for f in (
            {"from": "legacy/web", "to": "sre/api:8080", "protocol": "http"},
            {"from": "sre/api", "to": "legacy/db:5432", "protocol": "tcp"},
        )
    ]
    metrics = TrafficMetrics(world.physics.control_plane, flows, rate=2.0, clock=clock)
    clock.now = 10.0
    first = parse(metrics.text())
    (dest,) = [s for s in first if s[0] == "istio_requests_total" and s[1]["reporter"] == "destination"]
    assert dest[1]["connection_security_policy"] == "none" and dest[1]["response_code"] == "200"
    assert dest[1]["source_workload"] == "web" and dest[1]["destination_service"] == "api.sre.svc.cluster.local"
    assert dest[2] == 20.0
    assert not [s for s in first if s[0] == "istio_requests_total" and s[1]["reporter"] == "source"]
    tcp = [s for s in first if s[0] == "istio_tcp_connections_opened_total"]
    assert [s[1]["reporter"] for s in tcp] == ["source"]  # only api's sidecar sees its call to db
    assert mtls_share(first, {}) == 0.0

    world.namespace("legacy", {"istio-injection": "enabled"})
    world.restart("legacy", "web")
    before = _snapshot(first)
    clock.now = 15.0
    second = parse(metrics.text())
    assert mtls_share(second, before) == 1.0
    source = [s for s in second if s[0] == "istio_requests_total" and s[1]["reporter"] == "source"]
    assert source and source[0][1]["connection_security_policy"] == "unknown"
    old = next(s for s in second if s[1].get("connection_security_policy") == "none" and s[0] == "istio_requests_total")
    assert old[2] == 20.0  # the plaintext series stopped growing


def test_denied_requests_are_reported_with_403() -> None:
    world = World()
    world.istiod()
    world.namespace("sre", {"istio-injection": "enabled"})
    world.workload("sre", "api")
    world.workload("sre", "web")
    world.apply_yaml(
        "{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, "
        "metadata: {name: deny, namespace: sre}, spec: {}}"
    )
    clock = Clock()
    metrics = TrafficMetrics(
        world.physics.control_plane, [Flow.model_validate({"from": "sre/web", "to": "sre/api:8080"})], clock=clock
    )
    clock.now = 3.0
    samples = parse(metrics.text())
    codes = {(s[1]["reporter"], s[1]["response_code"], s[1]["connection_security_policy"]) for s in samples}
    assert codes == {("source", "403", "unknown"), ("destination", "403", "mutual_tls")}


def test_linkerd_proxies_report_response_total_with_tls_identity() -> None:
    world = World()
    world.linkerd()
    world.namespace("emojivoto", annotations={"linkerd.io/inject": "enabled"})
    world.workload("emojivoto", "voting")
    world.workload("emojivoto", "web")
    world.workload("legacy", "cron")
    clock = Clock()
    flows = [
        Flow.model_validate({"from": src, "to": "emojivoto/voting:8080"}) for src in ("emojivoto/web", "legacy/cron")
    ]
    metrics = TrafficMetrics(world.physics.control_plane, flows, clock=clock)
    clock.now = 4.0
    seen = {
        (s[1]["direction"], s[1]["tls"], s[1].get("deployment"), s[2])
        for s in parse(metrics.text())
        if s[0] == "response_total"
    }
    assert seen == {
        ("outbound", "true", "web", 4.0),
        ("inbound", "true", "voting", 4.0),
        ("inbound", "no_identity", "voting", 4.0),
    }
