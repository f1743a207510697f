"""The mesh-aware ``PodRuntime``: what each container of a pod does, given the mesh around it.

- Before the first container of a pod that has not started runs, an ambient-eligible pod is
  enrolled (``ambient.enrol_at_start``): istio-cni sets up the redirection when the pod's network is
  created, before any container starts, so even the first call of a short-lived probe pod goes
  through ztunnel with the pod's identity.
- ``istio-init`` / ``linkerd-init`` complete; a native sidecar (init container with
  ``restartPolicy: Always``) keeps running and is ready once it holds a certificate.
- An application init container that needs the network (pod annotation
  ``sandbox.runbook.dev/init-needs-network: "true"`` or a comma list of container names) hangs when
  the pod's proxy is a classic sidecar: the init's iptables redirect its traffic to a proxy that
  only starts after all init containers (https://istio.io/latest/blog/2023/native-sidecars/). A
  native sidecar starts first, so the init container completes.
- A classic proxy container is ready when it holds a certificate and istiod answered when it
  started (a proxy that was ready stays ready while istiod is down, on its last configuration).
- Probe containers (curl, openssl s_client) run their call; see ``probes``.
- An app container of a workload declared ``breaks_when_meshed`` crash-loops once meshed.
- Otherwise the app runs; it is ready when its readiness probe gets through the mesh.
"""

from __future__ import annotations

from collections.abc import Callable

from runbook_engine.kube.flow import Outcome, Protocol
from runbook_engine.sandbox.physics import objects as o
from runbook_engine.sandbox.physics.ambient import enrol_at_start
from runbook_engine.sandbox.physics.connection import ConnectionPhysics
from runbook_engine.sandbox.physics.control_plane import ControlPlane
from runbook_engine.sandbox.physics.probes import ProbeRunner, parse_probe
from runbook_engine.sandbox.physics.svid import IdentityService, identity_status
from runbook_engine.sandbox.physics.topology import Dataplane, MeshView, Peer, PeerKind, Target, pod_dataplane
from runbook_engine.sandbox.runtime import ContainerOutcome, ContainerState
from runbook_engine.sandbox.store import Store

PROXIES = frozenset({o.ISTIO_PROXY, o.LINKERD_PROXY})
AGENT_PORTS = frozenset({15020, 15021, 4191})  # pilot-agent / Envoy health, linkerd-proxy admin


class MeshRuntime:
    """``PodRuntime`` backed by the mesh physics."""

    def __init__(
        self,
        control_plane: ControlPlane,
        identities: IdentityService,
        view: Callable[[], MeshView] | None = None,
    ) -> None:
        self.cp = control_plane
        self.identities = identities
        self.probes = ProbeRunner(identities)
        self._view = view or (lambda: MeshView.take(self.cp))

    def run_init_container(self, store: Store, pod: o.Obj, container: o.Obj) -> ContainerOutcome:
        enrol_at_start(store, pod, self.cp)
        name = str(container.get("name", ""))
        if name in PROXIES and o.is_native_sidecar(container):
            return ContainerOutcome(ContainerState.RUNNING, ready=self._proxy_ready(pod, name))
        if o.is_native_sidecar(container):
            return ContainerOutcome(ContainerState.RUNNING)
        if name not in (o.ISTIO_INIT, o.LINKERD_INIT) and _needs_network(pod, name) and _classic_sidecar(pod):
            return ContainerOutcome(
                ContainerState.HANGING,
                reason="PodInitializing",
                log="dial tcp: connect: connection refused (waiting for the network; the sidecar proxy "
                "has not started: it starts after init containers)\n",
                ready=False,
            )
        return ContainerOutcome(ContainerState.COMPLETED, reason="Completed")

    def run_container(self, store: Store, pod: o.Obj, container: o.Obj) -> ContainerOutcome:
        enrol_at_start(store, pod, self.cp)
        name = str(container.get("name", ""))
        if name in PROXIES:
            return ContainerOutcome(ContainerState.RUNNING, ready=self._proxy_ready(pod, name))
        probe = parse_probe(container)
        if probe is not None:
            return self.probes.run(self._view(), pod, probe)
        ns, workload = o.namespace_of(pod), o.workload_name(pod)
        if pod_dataplane(pod) is not Dataplane.NONE and self.cp.faults.breaks(ns, workload):
            return ContainerOutcome(
                ContainerState.FAILED,
                1,
                "Error",
                f"fatal: {workload} cannot start behind the mesh proxy (connection to a dependency failed)\n",
                ready=False,
            )
        return ContainerOutcome(ContainerState.RUNNING, ready=self._readiness(pod, container))

    def _proxy_ready(self, pod: o.Obj, name: str) -> bool:
        if _was_ready(pod, name):
            return True
        view = self._view()
        if not identity_status(view, pod).available:
            return False
        if name == o.ISTIO_PROXY:
            return any(self.cp.istiod_ready(rev) for rev in self.cp.istiods())
        return self.cp.linkerd_ready()

    def _readiness(self, pod: o.Obj, container: o.Obj) -> bool:
        probe = container.get("readinessProbe") or {}
        handler = probe.get("httpGet") or probe.get("tcpSocket")
        if not handler:
            return True
        port = _port_number(handler.get("port"), container)
        if port in AGENT_PORTS or not o.pod_ip(pod) or pod_dataplane(pod) is Dataplane.NONE:
            return True  # the agent answers, or nothing stands between the kubelet and the app
        view = self._view()
        target = Target(
            host=o.pod_ip(pod),
            port=port,
            namespace=o.namespace_of(pod),
            target_port=port,
            pod=pod,
            workload=o.workload_name(pod),
            dataplane=pod_dataplane(pod),
            service=o.workload_name(pod),
        )
        protocol = Protocol.HTTP if "httpGet" in probe else Protocol.TCP
        result = ConnectionPhysics(view, self.identities).connect(
            Peer(PeerKind.KUBELET, ip="10.0.0.1"), target, protocol, str(handler.get("path", "/"))
        )
        return result.outcome is Outcome.OK


def _needs_network(pod: o.Obj, container: str) -> bool:
    value = o.annotations_of(pod).get(o.INIT_NEEDS_NETWORK, "")
    return o.truthy(value) or container in {v.strip() for v in value.split(",")}


def _classic_sidecar(pod: o.Obj) -> bool:
    return any(c.get("name") in PROXIES for c in o.containers(pod))


def _was_ready(pod: o.Obj, name: str) -> bool:
    status = pod.get("status") or {}
    statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    return any(s.get("name") == name and s.get("ready") for s in statuses)


def _port_number(value: object, container: o.Obj) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(str(value))
    return next(
        (int(p.get("containerPort", 0)) for p in container.get("ports") or [] if p.get("name") == value), 0
    )
