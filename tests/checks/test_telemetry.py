"""mtls_share against a Prometheus query API on loopback: shares, thresholds, no data, skip."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Status

from .check_support import run_check


def sample(ns: str, policy: str, value: float) -> dict[str, Any]:
    return {"metric": {"destination_workload_namespace": ns, "connection_security_policy": policy},
            "value": [1763900000.0, str(value)]}


class Prometheus:
    """Answers /api/v1/query with ``result`` and records the queries it was asked."""

    def __init__(self) -> None:
        self.result: list[dict[str, Any]] = []
        self.queries: list[str] = []
        self.status = 200


@pytest.fixture
def prometheus() -> Iterator[tuple[Prometheus, str]]:
    state = Prometheus()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            state.queries.append(query["query"][0])
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": state.result}})
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def share(url: str | None, args: dict[str, Any]) -> Any:
    return run_check("mtls_share", MemoryCluster([]), args, prometheus_url=url)


def test_a_namespace_below_its_threshold_fails_and_the_query_is_the_documented_one(
        prometheus: tuple[Prometheus, str]) -> None:
    state, url = prometheus
    state.result = [sample("sre", "mutual_tls", 90), sample("sre", "none", 10), sample("payments", "mutual_tls", 50)]
    verdict = share(url, {"namespaces": ["sre", "payments"]})
    assert verdict.status is Status.FAIL
    assert verdict.summary == ("namespaces below their mTLS share (1): sre (90.0% of 100 requests over mTLS, "
                               "required 100%)")
    assert state.queries == [
        'sum by (destination_workload_namespace, connection_security_policy) (increase(istio_requests_total{'
        'reporter="destination",destination_workload_namespace=~"sre|payments"}[5m]))']
    assert verdict.evidence[0].command.startswith(f"curl -sG '{url}/api/v1/query' --data-urlencode 'query=sum by")


def test_per_namespace_thresholds(prometheus: tuple[Prometheus, str]) -> None:
    state, url = prometheus
    state.result = [sample("sre", "mutual_tls", 90), sample("sre", "none", 10)]
    verdict = share(url, {"namespaces": ["sre"], "thresholds": {"sre": 80}})
    assert (verdict.status, verdict.summary) == (Status.PASS, "sre: 90.0% of 100 requests over mTLS, required 80%")


def test_an_empty_result_is_no_data_never_a_pass(prometheus: tuple[Prometheus, str]) -> None:
    state, url = prometheus
    state.result = [sample("payments", "mutual_tls", 5)]
    verdict = share(url, {"namespaces": ["sre"], "min_percent": 0})
    assert verdict.status is Status.NO_DATA
    assert verdict.summary == "namespaces without telemetry (1): sre (no requests in the window)"


def test_no_prometheus_url_skips_and_an_unreachable_one_is_no_data(prometheus: tuple[Prometheus, str]) -> None:
    assert share(None, {"namespaces": ["sre"]}).status is Status.SKIP
    state, url = prometheus
    state.status = 500
    failed = share(url.replace("http://", "http://admin:hunter2@"), {"namespaces": ["sre"]})
    assert failed.status is Status.NO_DATA and failed.summary.startswith("Prometheus query failed: HTTP Error 500")
    assert "hunter2" not in failed.evidence[0].command


def test_window_and_namespaces_are_validated() -> None:
    with pytest.raises(ValueError, match="PromQL duration"):
        share(None, {"namespaces": ["sre"], "window": "5 minutes"})
    with pytest.raises(ValueError, match="not namespace names"):
        share(None, {"namespaces": ['sre"}) or vector(1']})
