"""Benchmark: a generated 200-namespace / 5,000-workload platform in the sandbox.

Generates the scenario, starts the sandbox on it as ``runbook sandbox up`` does (``build_sandbox``:
the API server with the mesh physics; ``--bare`` for the server alone), lets the controllers settle
every Deployment, StatefulSet and pod, and lists all pods three ways: through the official
kubernetes client (what a user waits for), as raw HTTPS (bytes only: the server plus the wire) and
in the server alone (the API as a function, no socket). Prints the time of each step. A benchmark,
not a test: run it by hand::

    .venv/bin/python bench/bench_sandbox.py [--namespaces 200] [--workloads 5000] [--flows 10000] [--bare]
"""

from __future__ import annotations

import argparse
import json
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

from runbook_engine.sandbox.api.app import Request
from runbook_engine.sandbox.api.routing import Query
from runbook_engine.sandbox.app import build_sandbox
from runbook_engine.sandbox.generate import generate_scenario, write_scenario
from runbook_engine.sandbox.server import SandboxServer

_new_client: Callable[..., Any] = config.new_client_from_config
_PODS = "/api/v1/pods"


def _ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _server(state: Path, scenario: Path, bare: bool) -> SandboxServer:
    return SandboxServer(state, scenario=scenario) if bare else build_sandbox(state, scenario)


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _raw_list(server: SandboxServer) -> int:
    """All pods over HTTPS, undecoded: the bytes a client receives."""
    context = ssl.create_default_context(cafile=str(server.state_dir / "tls" / "ca.crt"))
    request = urllib.request.Request(server.url + _PODS, headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, context=context, timeout=600) as response:
        return len(response.read())


def _server_list(server: SandboxServer) -> int:
    """All pods from the API app itself: routing, listing and encoding, no socket."""
    assert server.app is not None
    request = Request("GET", _PODS, Query(""), {"authorization": f"Bearer {server.token}"})
    response = server.app.handle(request)
    return len(json.loads(response.body)["items"])


def _list_pods(server: SandboxServer) -> None:
    api = client.CoreV1Api(_new_client(config_file=str(server.kubeconfig)))
    seconds, pods = _timed(lambda: api.list_pod_for_all_namespaces(_request_timeout=600))
    ready = sum(1 for p in pods.items if _ready(p))
    print(f"list:     {seconds:6.2f}s  {len(pods.items)} pods through the kubernetes client ({ready} ready)")
    seconds, size = _timed(lambda: _raw_list(server))
    print(f"  raw:    {seconds:6.2f}s  {size / 1e6:.1f} MB over HTTPS, undecoded")
    seconds, count = _timed(lambda: _server_list(server))
    print(f"  server: {seconds:6.2f}s  {count} pods listed and encoded by the API app")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--workloads", type=int, default=5000)
    parser.add_argument("--flows", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument("--bare", action="store_true", help="the API server and controllers without mesh physics")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        scenario_path = Path(tmp) / "scenario.yaml"
        started = time.perf_counter()
        scenario = generate_scenario(args.namespaces, args.workloads, args.flows, args.seed)
        write_scenario(scenario, scenario_path)
        print(f"generate: {time.perf_counter() - started:6.2f}s  {len(scenario['manifests'])} objects, "
              f"{len(scenario['nodes'])} nodes, {len(scenario['flows'])} flows")

        started = time.perf_counter()
        with _server(Path(tmp) / "state", scenario_path, args.bare) as server:
            up = time.perf_counter() - started
            print(f"start:    {up:6.2f}s  (load scenario, seed, serve{'' if args.bare else ', mesh physics'})")
            server.settle(timeout=args.settle_timeout)
            settled = time.perf_counter() - started - up
            print(f"settle:   {settled:6.2f}s  (after start, until every workload's pods are ready; "
                  f"{up + settled:.2f}s in all)")
            _list_pods(server)


if __name__ == "__main__":
    main()
