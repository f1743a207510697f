"""Per-node agents: ``spire_ready`` (server, an agent and the CSI driver on every node) and
``ztunnel_ready`` (one Ready ztunnel per node, for ambient mode).

Nodes and the agents' pods are each listed once; a node is covered when a Ready pod of the agent
runs on it (``spec.nodeName``). A pod is recognised as an agent by its ``app`` or
``app.kubernetes.io/name`` label, or by its name (``spire-agent-x7k2p``), as DaemonSet pods are named.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from runbook_engine.checks.base import Check, CheckArgs, CheckContext, register
from runbook_engine.checks.control_plane import SPIRE_NAMESPACES
from runbook_engine.checks.evidence import Finding, conclude, evidence, listing, plural, table, worst
from runbook_engine.kube.cluster import Obj
from runbook_engine.kube.health import pod_ready, pod_status_text, rollout_state
from runbook_engine.kube.refs import ObjectRef
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict


def is_component(pod: Mapping[str, Any], app: str) -> bool:
    meta = pod.get("metadata") or {}
    lbl = meta.get("labels") or {}
    return app in (lbl.get("app"), lbl.get("app.kubernetes.io/name")) or str(meta.get("name", "")).startswith(f"{app}-")


def node_names(ctx: CheckContext, selector: str | None) -> list[str]:
    """Names of the nodes that must run the agent (all, or those matching ``selector``)."""
    return sorted(str(n["metadata"]["name"]) for n in ctx.cluster.list("v1", "Node", None, selector))


def by_node(pods: list[Obj], app: str) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = defaultdict(list)
    for pod in pods:
        if is_component(pod, app):
            out[str((pod.get("spec") or {}).get("nodeName") or "")].append(pod)
    return out


def coverage(nodes: list[str], pods: Mapping[str, list[Obj]], app: str) -> list[Finding]:
    """One finding per node: a Ready ``app`` pod on it (PASS), or what is missing (FAIL)."""
    out = []
    for node in nodes:
        ready = [p for p in pods.get(node, []) if pod_ready(p)]
        if ready:
            out.append(Finding(Status.PASS, node, f"{app} {ready[0]['metadata']['name']} Ready"))
        elif pods.get(node):
            states = ", ".join(f"{p['metadata']['name']} {pod_status_text(p)}" for p in pods[node])
            out.append(Finding(Status.FAIL, node, f"{app} not Ready: {states}"))
        else:
            out.append(Finding(Status.FAIL, node, f"no {app} pod"))
    return out


def agents_table(nodes: list[str], pods: Mapping[str, list[Obj]]) -> str:
    rows = []
    for node in nodes:
        rows += [[node, str(p["metadata"]["name"]), str((p.get("status") or {}).get("phase") or "Unknown"),
                  ready_column(p)] for p in pods.get(node, [])]
        if not pods.get(node):
            rows.append([node, "<none>", "-", "-"])
    return table(["NODE", "POD", "STATUS", "READY"], rows)


def ready_column(pod: Mapping[str, Any]) -> str:
    """``.status.containerStatuses[*].ready`` as kubectl prints it: ``true,false``."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return ",".join(str(bool(s.get("ready"))).lower() for s in statuses) or "<none>"


def pods_command(namespace: str, app: str) -> str:
    return (f"kubectl get pods -n {namespace} -l app={app} -o custom-columns=NODE:.spec.nodeName,"
            "POD:.metadata.name,STATUS:.status.phase,READY:.status.containerStatuses[*].ready")


class SpireReadyArgs(CheckArgs):
    namespace: str | None = Field(default=None, description="SPIRE's namespace; found among the usual ones if unset.")
    server: str = Field(default="spire-server", description="The SPIRE server StatefulSet.")
    agent: str = Field(default="spire-agent", description="App name of the agent DaemonSet's pods.")
    csi_driver: str = Field(default="spiffe-csi-driver", description="App name of the CSI driver's pods.")
    nodes: str | None = Field(default=None, description="Label selector of the nodes that need an agent (default all).")


@register
class SpireReady(Check[SpireReadyArgs]):
    name = "spire_ready"
    section = Section.IDENTITY
    purpose = "The SPIRE server is ready and every node runs a Ready SPIRE agent and the SPIFFE CSI driver."
    Args = SpireReadyArgs

    def run(self, ctx: CheckContext, args: SpireReadyArgs) -> Verdict:
        found = self._server(ctx, args)
        if found is None:
            where = args.namespace or ", ".join(SPIRE_NAMESPACES)
            return conclude(self, ctx, Status.FAIL, f"SPIRE is not installed: no StatefulSet {args.server} in {where}",
                            [Evidence(f"kubectl get statefulsets -A -l app={args.server}", "No resources found")],
                            hint="install SPIRE first (the identity phase)")
        ns, server = found
        state = rollout_state(server)
        nodes = node_names(ctx, args.nodes)
        pods = ctx.cluster.list("v1", "Pod", ns)
        agents, csi = by_node(pods, args.agent), by_node(pods, args.csi_driver)
        findings = [Finding(Status.PASS if state.done else Status.FAIL, f"{ns}/{args.server}", state.detail)]
        findings += coverage(nodes, agents, args.agent) + coverage(nodes, csi, args.csi_driver)
        proof = [
            evidence(f"kubectl rollout status statefulset/{args.server} -n {ns} --watch=false", state.detail),
            evidence(pods_command(ns, args.agent), agents_table(nodes, agents)),
            evidence(pods_command(ns, args.csi_driver), agents_table(nodes, csi)),
        ]
        return self._conclude(ctx, ns, findings, len(nodes), proof)

    def _conclude(self, ctx: CheckContext, ns: str, findings: list[Finding], nodes: int,
                  proof: list[Evidence]) -> Verdict:
        status = worst(f.status for f in findings)
        failing = [f for f in findings if f.status is Status.FAIL]
        if status is Status.PASS:
            return conclude(self, ctx, status, f"SPIRE server ready; agent and CSI driver Ready on every node "
                            f"({plural(nodes, 'node')})", proof)
        return conclude(self, ctx, status, f"SPIRE incomplete: {listing(failing)}", proof,
                        hint=f"kubectl get daemonsets -n {ns}; a node without an agent cannot issue SVIDs to "
                        "its pods, so their proxies never become ready", data={"failing": [str(f) for f in failing]})

    @staticmethod
    def _server(ctx: CheckContext, args: SpireReadyArgs) -> tuple[str, Obj] | None:
        for ns in [args.namespace] if args.namespace else list(SPIRE_NAMESPACES):
            obj = ctx.cluster.get(ObjectRef("apps/v1", "StatefulSet", ns, args.server))
            if obj is not None:
                return ns, obj
        return None


class ZtunnelReadyArgs(CheckArgs):
    namespace: str = Field(default="istio-system", description="Namespace of the ztunnel DaemonSet.")
    app: str = Field(default="ztunnel", description="App name of the ztunnel pods.")
    nodes: str | None = Field(default=None, description="Label selector of the nodes that need ztunnel (default: all).")


@register
class ZtunnelReady(Check[ZtunnelReadyArgs]):
    name = "ztunnel_ready"
    section = Section.FOUNDATION
    purpose = "Every node runs exactly one Ready ztunnel, so ambient pods on any node are captured."
    Args = ZtunnelReadyArgs

    def run(self, ctx: CheckContext, args: ZtunnelReadyArgs) -> Verdict:
        nodes = node_names(ctx, args.nodes)
        pods = by_node(ctx.cluster.list("v1", "Pod", args.namespace), args.app)
        findings = coverage(nodes, pods, args.app)
        findings += [Finding(Status.FAIL, node, f"{len(pods[node])} ztunnel pods")
                     for node in nodes if len(pods.get(node, [])) > 1]
        proof = [evidence(pods_command(args.namespace, args.app), agents_table(nodes, pods))]
        status = worst(f.status for f in findings)
        if not nodes:
            return conclude(self, ctx, Status.NO_DATA, "no nodes listed", proof)
        if status is Status.PASS:
            return conclude(self, ctx, status, f"one Ready ztunnel per node ({plural(len(nodes), 'node')})",
                            proof)
        failing = [f for f in findings if f.status is Status.FAIL]
        return conclude(self, ctx, status, f"ztunnel missing or not Ready on {plural(len(failing), 'node')}: "
                        f"{listing(failing)}", proof,
                        hint=f"kubectl describe daemonset ztunnel -n {args.namespace}; ambient pods on these nodes "
                        "have no data plane (check taints, tolerations and the istio-cni node agent)")
