"""The sandbox's service-mesh physics: Istio (sidecar and ambient), Linkerd and SPIRE behaviour.

An independent implementation from the Istio, Linkerd and SPIRE documentation (it imports only
``kube`` and ``errors``), so that the planner's predictions and the checks can be judged against it.

- ``injection``: the sidecar injectors as a ``Store.admission`` hook (only at pod creation).
- ``ambient``: istio-cni's enrolment of pods into ambient mode (live, per node's ztunnel).
- ``identity`` / ``svid``: CAs (istiod's, SPIRE's, Linkerd's) issuing real X.509 SVIDs.
- ``connection``: ``evaluate_flow(store, flow) -> (Outcome, reasons)``: mTLS, PeerAuthentication,
  DestinationRule/ServiceEntry egress, Istio and Linkerd authorization, probes and webhooks.
- ``probes``: curl / openssl s_client pods that execute their call and log the real output.
- ``runtime``: ``MeshRuntime``, the mesh-aware ``PodRuntime``.
- ``telemetry``: ``istio_requests_total`` and ``istio_tcp_connections_opened_total``.

Signals the physics reads (all ordinary objects):

- istiod: Deployment ``istiod`` (revision ``default``) or ``istiod-<rev>`` in ``istio-system`` with
  ready replicas, plus a MutatingWebhookConfiguration with a ``*sidecar-injector.istio.io`` webhook;
  container env ``ENABLE_NATIVE_SIDECARS=true`` and ``DEFAULT_WORKLOAD_CERT_TTL`` (default 24h);
  ConfigMap ``istio-system/istio`` key ``mesh`` (``trustDomain``, ``trustDomainAliases``,
  ``rootNamespace``, ``outboundTrafficPolicy``, ``extensionProviders``).
- Waypoints (ambient L7): label ``istio.io/use-waypoint=<name>`` on a Service or its namespace and a
  Gateway API ``Gateway`` of that name; AuthorizationPolicies then attach with ``targetRefs``.
- SPIRE as the CA: StatefulSet ``spire-server`` (namespace ``spire-server``, ``spire`` or
  ``spire-system``) with ready replicas, ConfigMap ``spire-server`` key ``server.conf``
  (``trust_domain``, ``default_x509_svid_ttl``), ``spire-agent`` pods per node; istiod is told to
  use it by the ``spire`` injection template — ConfigMap ``istio-system/istio-sidecar-injector`` key
  ``config`` with ``defaultTemplates: [sidecar, spire]``, or pod annotation
  ``inject.istio.io/templates: sidecar,spire`` — which mounts the SPIFFE CSI driver socket.
- ztunnel: pods labelled ``app=ztunnel`` in ``istio-system``, per node.
- Linkerd: Deployments ``linkerd-destination`` and ``linkerd-identity`` in ``linkerd``; ConfigMap
  ``linkerd/linkerd-config`` key ``values`` (``proxy.defaultInboundPolicy``, ``clusterNetworks``).
- An init container that needs the network: pod annotation
  ``sandbox.runbook.dev/init-needs-network: "true"`` (or a comma list of init container names).

Mesh faults (scenario ``faults:`` entries; see ``faults``)::

    - breaks_when_meshed: {namespace: sre, workload: legacy-worker}
    - ztunnel_missing: {node: node-3}
    - istiod_down: true
    - spire_agent_missing: {node: node-2}

istiod down: the injector webhook is unreachable; it fails closed (pod creation in a selected
namespace is refused with a 500, as the real API server reports a failed webhook call) unless its
``failurePolicy`` is ``Ignore`` (then the pod comes up without a proxy); held certificates stop
renewing (``MeshPhysics.evaluate`` fails mTLS to a workload whose held certificate expired) and
new proxies never become ready. Runtime changes to mesh faults go through ``MeshPhysics.faults``
(``add``/``remove``/``clear``); a server built by ``build_sandbox`` registers
``faults.MeshFaultHandler`` so that ``/sandbox/admin/faults`` switches them, listed with ids.
"""

from __future__ import annotations

from runbook_engine.sandbox.physics.connection import ConnectionPhysics, FlowResult, evaluate_flow
from runbook_engine.sandbox.physics.core import MeshPhysics
from runbook_engine.sandbox.physics.faults import MeshFaults
from runbook_engine.sandbox.physics.runtime import MeshRuntime

__all__ = ["ConnectionPhysics", "FlowResult", "MeshFaults", "MeshPhysics", "MeshRuntime", "evaluate_flow"]
