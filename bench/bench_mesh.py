"""Micro-benchmark of the mesh semantics: index a synthetic platform and evaluate every flow.

The platform: 200 namespaces x 25 workloads (5,000 Deployments, each with a Service and a running
pod), half the namespaces injected with Istio sidecars, a few with ambient or Linkerd, a mesh-wide
STRICT PeerAuthentication, per-namespace PERMISSIVE exceptions and ALLOW policies, DestinationRules,
and 20,000 flows between random workloads, from ingress and from outside the cluster. Then the same
flows on two more states through ``Predictions``: one identical (every result reused) and one where the
mesh-wide PeerAuthentication changes (nothing reused).

Run: ``python bench/bench_mesh.py [--namespaces N] [--per-namespace M] [--flows F]``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from typing import Any

from runbook_engine.kube.flow import Flow
from runbook_engine.mesh import MeshView, Predictions, evaluate_all

Obj = dict[str, Any]


def _deployment(ns: str, name: str, meshed: bool) -> list[Obj]:
    containers: list[Obj] = [{"name": "app", "ports": [{"containerPort": 8080, "name": "http"}]}]
    if meshed:
        containers.append({"name": "istio-proxy"})
    template = {"metadata": {"labels": {"app": name}}, "spec": {"serviceAccountName": name, "containers": containers}}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": template},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{name}-0", "namespace": ns, "labels": {"app": name}},
            "spec": template["spec"],
            "status": {"podIP": f"10.{len(ns) % 200}.{hash(name) % 250}.{len(name)}"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        },
    ]


def _namespace_policies(ns: str, index: int) -> list[Obj]:
    objs: list[Obj] = []
    if index % 10 == 0:
        objs.append(_obj("security.istio.io/v1", "PeerAuthentication", ns, "default", {"mtls": {"mode": "PERMISSIVE"}}))
    if index % 4 == 0:
        rule = {"from": [{"source": {"namespaces": [ns, "ingress"]}}], "to": [{"operation": {"methods": ["GET"]}}]}
        objs.append(_obj("security.istio.io/v1", "AuthorizationPolicy", ns, "allow-ns", {"rules": [rule]}))
    if index % 7 == 0:
        spec = {
            "selector": {"matchLabels": {"app": "w0"}},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {8080: {"mode": "PERMISSIVE"}},
        }
        objs.append(_obj("security.istio.io/v1", "PeerAuthentication", ns, "w0", spec))
    if index % 9 == 0:
        spec = {"host": f"*.{ns}.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}
        objs.append(_obj("networking.istio.io/v1", "DestinationRule", ns, "mtls", spec))
    return objs


def _obj(api_version: str, kind: str, ns: str, name: str, spec: Obj) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def build_platform(namespaces: int, per_namespace: int) -> list[Obj]:
    objects: list[Obj] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
            "spec": {},
        },
        _obj("security.istio.io/v1", "PeerAuthentication", "istio-system", "default", {"mtls": {"mode": "STRICT"}}),
    ]
    for i in range(namespaces):
        ns = f"ns{i:03d}"
        meshed = i % 2 == 0
        labels = {"istio-injection": "enabled"} if meshed else {}
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
        for j in range(per_namespace):
            objects += _deployment(ns, f"w{j}", meshed)
        objects += _namespace_policies(ns, i)
    objects += _deployment("ingress", "nginx", False)
    return objects


def build_flows(namespaces: int, per_namespace: int, count: int, seed: int = 7) -> list[Flow]:
    rng = random.Random(seed)
    flows: list[Flow] = []
    for _ in range(count):
        dst = f"ns{rng.randrange(namespaces):03d}/w{rng.randrange(per_namespace)}:80"
        roll = rng.random()
        src = (
            "ingress/nginx"
            if roll < 0.1
            else "external:internet"
            if roll < 0.15
            else f"ns{rng.randrange(namespaces):03d}/w{rng.randrange(per_namespace)}"
        )
        flows.append(Flow.model_validate({"from": src, "to": dst, "protocol": "http" if rng.random() < 0.8 else "tcp"}))
    return flows


def _predict_all(predictions: Predictions, flows: list[Flow]) -> float:
    start = time.perf_counter()
    for flow in flows:
        predictions.result(flow)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--per-namespace", type=int, default=25)
    parser.add_argument("--flows", type=int, default=20_000)
    args = parser.parse_args()
    objects = build_platform(args.namespaces, args.per_namespace)
    flows = build_flows(args.namespaces, args.per_namespace, args.flows)
    start = time.perf_counter()
    view = MeshView.build(objects)
    built = time.perf_counter()
    results = evaluate_all(view, flows)
    done = time.perf_counter()
    outcomes = Counter(r.outcome.value for r in results)
    print(f"objects: {len(objects)}  workloads: {len(view.workloads)}  flows: {len(flows)}")
    per_flow = (done - built) / len(flows) * 1e6
    print(f"index: {built - start:.2f} s  evaluate_all: {done - built:.2f} s  ({per_flow:.0f} µs/flow)")
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    _next_states(objects, flows)


def _is_mesh_wide_policy(obj: Obj) -> bool:
    meta = obj["metadata"]
    return obj["kind"] == "PeerAuthentication" and (meta.get("namespace"), meta["name"]) == ("istio-system", "default")


def _next_states(objects: list[Obj], flows: list[Flow]) -> None:
    """Predictions over successive states: one that changes nothing, then one that changes a policy."""
    first = Predictions(MeshView.build(objects))
    _predict_all(first, flows)
    same = Predictions(MeshView.build(objects), first)
    unchanged = _predict_all(same, flows)
    permissive = _obj("security.istio.io/v1", "PeerAuthentication", "istio-system", "default",
                      {"mtls": {"mode": "PERMISSIVE"}})
    changed_objects = [o for o in objects if not _is_mesh_wide_policy(o)] + [permissive]
    policy = Predictions(MeshView.build(changed_objects), same)
    changed = _predict_all(policy, flows)
    print(f"next state, nothing changed: {unchanged:.2f} s ({same.reused} reused); "
          f"mesh-wide PeerAuthentication changed: {changed:.2f} s ({policy.reused} reused)")


if __name__ == "__main__":
    main()
