"""Benchmark: planning a mesh rollout of a generated platform end to end against the sandbox.

For each size (default 1,000 / 2,500 / 5,000 workloads over 200 namespaces, four flows per
workload, so 20,000 flows at 5,000), it generates the platform, starts the sandbox on it in its own
process (``runbook sandbox up --detach``: the API server is not in the planner's process, as in
production) and waits until its controllers have created every pod and the platform is steady, then
plans a four-phase Istio rollout — control plane, enrol every namespace, restart every Deployment,
mesh-wide STRICT — through the same code path as
``runbook plan``: one snapshot of the cluster, the runner simulating every phase, flow predictions
before and after each phase, and one ``dryRun=All`` request per changed object. It prints the wall
time of the plan (split into snapshot, simulation and the rest), and the API requests it sent,
against the budget: one list per kind per phase plus one dry-run per changed object.

    .venv/bin/python bench/bench_planner.py [--workloads 1000 2500 5000] [--namespaces 200] [--no-dry-run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from runbook_engine.engine.modules import catalog
from runbook_engine.engine.plan_model import Plan
from runbook_engine.engine.planner import PlanOptions, plan_cluster
from runbook_engine.engine.simulation import snapshot_kinds
from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.sandbox.generate import generate_scenario, write_scenario
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook

PLAYBOOK = """
- name: istio rollout of a generated platform
  hosts: bench
  phases:
    - name: control-plane
      tasks:
        - name: istio-system
          k8s_apply: {definition: {apiVersion: v1, kind: Namespace, metadata: {name: istio-system}}}
        - name: istiod
          k8s_apply:
            definition:
              apiVersion: apps/v1
              kind: Deployment
              metadata: {name: istiod, namespace: istio-system, labels: {app: istiod}}
              spec:
                selector: {matchLabels: {app: istiod}}
                template:
                  metadata: {labels: {app: istiod, sidecar.istio.io/inject: "false"}}
                  spec: {containers: [{name: discovery, image: docker.io/istio/pilot:1.24.2,
                                       env: [{name: ENABLE_NATIVE_SIDECARS, value: "true"}]}]}
    - name: enrol
      tasks:
        - name: label every namespace for injection
          k8s_label: {kind: Namespace, name: "{{ item }}", labels: {istio-injection: enabled}}
          loop: "{{ namespaces }}"
    - name: inject
      tasks:
        - name: restart every Deployment
          rollout_restart: {kind: Deployment, selector: app, namespace: "{{ namespaces }}", wait: false}
    - name: strict
      tasks:
        - name: mesh-wide STRICT
          k8s_apply:
            definition:
              apiVersion: security.istio.io/v1
              kind: PeerAuthentication
              metadata: {name: default, namespace: istio-system}
              spec: {mtls: {mode: STRICT}}
"""


def _write_inputs(tmp: Path, scenario: dict[str, Any]) -> tuple[Path, Path]:
    namespaces = [m["metadata"]["name"] for m in scenario["manifests"] if m["kind"] == "Namespace"]
    hosts = {"all": {"hosts": {"bench": {"in_cluster": True, "namespaces": namespaces,
                                         "flows": scenario["flows"]}}}}
    (tmp / "inventory").mkdir()
    (tmp / "inventory" / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (tmp / "rollout.yml").write_text(PLAYBOOK)
    return tmp / "rollout.yml", tmp / "inventory"


def _report(workloads: int, flows: int, plan: Plan, seconds: float) -> None:
    lists = sum(n for k, n in plan.requests.items() if k.startswith("list "))
    dry_runs = sum(n for k, n in plan.requests.items() if not k.startswith("list "))
    changed = sum(len(p.objects) for p in plan.phases)
    budget = len(snapshot_kinds()) * len(plan.phases) + changed
    breaking = len(plan.breaking)
    steps = ", ".join(f"{name} {value:.1f}s" for name, value in plan.timings.items())
    print(f"{workloads:>6} workloads {flows:>6} flows | plan {seconds:6.2f}s ({steps}) | "
          f"requests {lists + dry_runs:>6} "
          f"({lists} lists + {dry_runs} dry-runs; budget {budget}) | {changed} objects changed, "
          f"{sum(len(p.restarts) for p in plan.phases)} restarts, {breaking} predicted breaks")


def _pods_created(cluster: Cluster) -> bool:
    for kind in ("Deployment", "StatefulSet"):
        for wl in cluster.list("apps/v1", kind):
            if int((wl.get("status") or {}).get("replicas", 0)) < int((wl.get("spec") or {}).get("replicas", 1)):
                return False
    return True


def _last_change(cluster: Cluster) -> int:
    """The newest resourceVersion among pods and workloads: it stops moving once the platform is steady."""
    kinds = (("v1", "Pod"), ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "ReplicaSet"))
    return max((int(o["metadata"].get("resourceVersion") or 0) for v, k in kinds for o in cluster.list(v, k)),
               default=0)


def _wait_steady(cluster: Cluster, deadline: float) -> None:
    """Until every workload has its pods and nothing changed for two seconds: a running platform, as an
    SRE plans against it, not one still starting (whose server would be busy creating pods)."""
    while not _pods_created(cluster) and time.monotonic() < deadline:
        time.sleep(1.0)
    last = -1
    while time.monotonic() < deadline:
        current = _last_change(cluster)
        if current == last:
            return
        last = current
        time.sleep(2.0)


@contextmanager
def sandbox(scenario: Path, state: Path) -> Iterator[Cluster]:
    """A sandbox of ``scenario`` in a separate process, once every workload has created its pods."""
    runbook = [str(Path(sys.executable).parent / "runbook")]
    subprocess.run([*runbook, "sandbox", "up", "--scenario", str(scenario), "--state", str(state), "--detach"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        cluster = KubeCluster.from_kubeconfig(state / "kubeconfig", None, "bench")
        _wait_steady(cluster, time.monotonic() + 600)
        yield cluster
    finally:
        subprocess.run([*runbook, "sandbox", "down", "--state", str(state)], check=False, stdout=subprocess.DEVNULL)


def bench(workloads: int, namespaces: int, flows_per_workload: int, dry_run: bool, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="runbook-bench-plan-") as name:
        tmp = Path(name)
        scenario = generate_scenario(namespaces, workloads, workloads * flows_per_workload, seed)
        write_scenario(scenario, tmp / "scenario.yaml")
        playbook_path, inventory_path = _write_inputs(tmp, scenario)
        playbook = load_playbook(playbook_path, catalog=catalog())
        inventory = load_inventory(inventory_path)
        with sandbox(tmp / "scenario.yaml", tmp / "state") as live:
            started = time.perf_counter()
            plan = plan_cluster(live, playbook, inventory, "bench", PlanOptions(dry_run=dry_run, workers=4))
            _report(workloads, len(scenario["flows"]), plan, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workloads", type=int, nargs="+", default=[1000, 2500, 5000])
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--flows-per-workload", type=int, default=4)
    parser.add_argument("--no-dry-run", action="store_true", help="Diff against the simulation only.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for workloads in args.workloads:
        bench(workloads, args.namespaces, args.flows_per_workload, not args.no_dry_run, args.seed)


if __name__ == "__main__":
    main()
