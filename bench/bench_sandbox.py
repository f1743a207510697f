"""Benchmark: a generated 200-namespace / 5,000-workload platform in the sandbox.

Generates the scenario, starts a ``SandboxServer`` on it (seeding, then controllers settling every
Deployment, StatefulSet and pod), and lists all pods through the official kubernetes client. Prints
the time of each step. A benchmark, not a test: run it by hand::

    .venv/bin/python bench/bench_sandbox.py [--namespaces 200] [--workloads 5000] [--flows 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config

from runbook_engine.sandbox.generate import generate_scenario, write_scenario
from runbook_engine.sandbox.server import SandboxServer

_new_client: Callable[..., Any] = config.new_client_from_config


def _ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--workloads", type=int, default=5000)
    parser.add_argument("--flows", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        scenario_path = Path(tmp) / "scenario.yaml"
        started = time.perf_counter()
        scenario = generate_scenario(args.namespaces, args.workloads, args.flows, args.seed)
        write_scenario(scenario, scenario_path)
        print(f"generate: {time.perf_counter() - started:6.2f}s  {len(scenario['manifests'])} objects, "
              f"{len(scenario['nodes'])} nodes, {len(scenario['flows'])} flows")

        started = time.perf_counter()
        with SandboxServer(Path(tmp) / "state", scenario=scenario_path) as server:
            up = time.perf_counter() - started
            server.settle(timeout=args.settle_timeout)
            settled = time.perf_counter() - started
            print(f"start:    {up:6.2f}s  (load scenario, seed, serve)")
            print(f"settle:   {settled:6.2f}s  (from start until every workload's pods are ready)")

            api = client.CoreV1Api(_new_client(config_file=str(server.kubeconfig)))
            started = time.perf_counter()
            pods = api.list_pod_for_all_namespaces(_request_timeout=600)
            listed = time.perf_counter() - started
            ready = sum(1 for p in pods.items if _ready(p))
            print(f"list:     {listed:6.2f}s  {len(pods.items)} pods through the kubernetes client ({ready} ready)")


if __name__ == "__main__":
    main()
