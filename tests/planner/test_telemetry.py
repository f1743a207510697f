"""Flows from mesh telemetry: Istio and Linkerd series read from a Prometheus HTTP API, merged with the inventory's."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from runbook_engine.engine.plan_model import FlowOrigin
from runbook_engine.engine.planner import declared_flows
from runbook_engine.engine.telemetry_flows import telemetry_flows
from runbook_engine.errors import ClusterError
from runbook_engine.mesh import MeshView
from runbook_engine.spec.inventory import load_inventory

from .conftest import CASES

ISTIO = [
    {"metric": {"source_workload": "exporter", "source_workload_namespace": "batch",
                "destination_service_name": "cart", "destination_service_namespace": "shop",
                "request_protocol": "http"}, "value": [0, "120"]},
    {"metric": {"source_workload": "unknown", "source_workload_namespace": "unknown",
                "destination_service_name": "cart", "destination_service_namespace": "shop",
                "request_protocol": "http"}, "value": [0, "7"]},  # a caller without a proxy: not nameable
    {"metric": {"source_workload": "cart", "source_workload_namespace": "shop",
                "destination_service_name": "gone", "destination_service_namespace": "shop",
                "request_protocol": "http"}, "value": [0, "3"]},  # no such Service any more
]
TCP = [{"metric": {"source_workload": "cart", "source_workload_namespace": "shop",
                   "destination_service_name": "cart", "destination_service_namespace": "shop"}, "value": [0, "9"]}]
LINKERD = [{"metric": {"namespace": "shop", "deployment": "cart", "dst_namespace": "shop",
                       "dst_deployment": "cart"}, "value": [0, "4"]}]


class _Prometheus(BaseHTTPRequestHandler):
    queries: list[str] = []

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
        self.queries.append(query)
        result = ISTIO if "istio_requests_total" in query else TCP if "istio_tcp" in query else LINKERD
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _view() -> MeshView:
    return MeshView.build(yaml.safe_load((CASES / "gate_platform.yaml").read_text()))


def test_istio_and_linkerd_series_become_flows(prometheus: str) -> None:
    flows = telemetry_flows(prometheus, _view(), hours=6)
    assert [(f.source, f.to, f.protocol.value) for f in flows] == [
        ("batch/exporter", "shop/cart:8080", "http"),
        ("shop/cart", "shop/cart:8080", "tcp"),
        ("shop/cart", "shop/cart:8080", "http"),
    ]
    assert all("[6h]" in q for q in _Prometheus.queries[-3:])


def test_telemetry_adds_to_the_inventory_flows_without_duplicates(prometheus: str) -> None:
    inventory = load_inventory(CASES / "gate_inventory")
    flows = declared_flows(inventory, "lab", prometheus, _view(), hours=24)
    assert [(f.id, origin) for f, origin in flows] == [
        ("batch/exporter -> shop/cart:8080", FlowOrigin.INVENTORY),  # declared and seen: once, as declared
        ("shop/cart -> shop/cart:8080", FlowOrigin.TELEMETRY),
        ("shop/cart -> shop/cart:8080", FlowOrigin.TELEMETRY),
    ]
    assert [f.protocol.value for f, _ in flows][1:] == ["tcp", "http"]


def test_an_unreachable_prometheus_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match="Prometheus query failed"):
        telemetry_flows("http://127.0.0.1:9", _view(), hours=1)
