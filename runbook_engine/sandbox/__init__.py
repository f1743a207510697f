"""A Kubernetes-API-compatible cluster emulator with service-mesh physics.

It serves HTTPS with a bearer token and writes a kubeconfig, so the official client and kubectl
use it unchanged. It imports ``kube`` only: its mesh behaviour is an independent implementation
that the planner's predictions and the checks are judged against.

Composition: ``store`` (versioned objects, watches, listeners), ``api`` (the REST verbs),
``controllers`` (workloads and the kubelet), ``physics`` (Istio, Linkerd, SPIRE), ``server``
(``SandboxServer``: HTTPS, state, faults) and ``app`` (``build_sandbox``: the server with the
physics wired in, as ``runbook sandbox up`` runs it). ``docs/sandbox.md`` is the user's guide.

Faults — ``api_error``, ``api_latency``, ``crashloop``, ``breaks_when_meshed``, ``ztunnel_missing``,
``istiod_down``, ``spire_agent_missing`` — are declared in a scenario's ``faults:`` list or switched
at run time through the admin endpoint, in the same entry shape (bearer token required):

- ``GET /sandbox/admin/faults`` lists every active fault with its id (``GET .../<id>``: one);
- ``POST /sandbox/admin/faults`` with one entry, e.g. ``{"istiod_down": true}``, activates it
  (201 with its id; 422 naming the accepted types for an unknown or malformed one);
- ``DELETE /sandbox/admin/faults/<id>`` lifts one fault, ``DELETE /sandbox/admin/faults`` all.

Each kind of fault is a ``faults.FaultHandler`` registered on the server's ``FaultBoard``.
"""
