"""Flow predictions over successive states of one platform, reusing results that provably cannot differ.

A plan predicts every flow on each phase boundary, and consecutive states often differ in nothing a
given flow depends on (a phase that only installs a control plane leaves every running pod as it
was). ``Predictions(view, previous)`` memoises ``evaluate_flow`` on one ``MeshView`` and takes a
flow's result from ``previous`` (the predictions of the state before) only when every input the
evaluation reads is equal in both states. Those inputs, and why they are all of them:

- the flow itself (the memo key: every field, so ``protocol``, ``method``, ``path`` too);
- the *caller* as ``flows.resolve_caller`` computes it: kind, label, address, and for a workload the
  ``Workload`` (kind, name, controller object, pod template, selector, pods) and its computed
  ``Enrolment`` (mesh, form, the reason chain the result quotes), plus the caller's Namespace object;
- the *target* as ``flows.resolve_target`` computes it: the ``Target`` (Service port, resolved
  workload compared like the caller's, container port, protocol, host) or the reason resolution
  stops, the target workload's computed ``Enrolment``, the Service object of that name and the
  target's Namespace object (waypoint label, Linkerd opaque-ports and default-policy annotations);
- the *configuration*: every indexed object that is not a workload, a pod or a namespace — all
  PeerAuthentications, AuthorizationPolicies (Istio and Linkerd), DestinationRules, ServiceEntries,
  Sidecars, Gateways, Servers, HTTPRoutes, authentications, webhook configurations, ConfigMaps and
  Services, in index order — and the parsed Istio mesh config and Linkerd config. When anything in
  it differs, nothing is reused for that state.

Other workloads, pods and namespaces are read only to resolve the caller and the target (which
workload a Service selects first), and the results of that resolution are compared. What the view
derives from the control-plane workloads (istiod revisions and revision tags, native sidecars,
ztunnel nodes) and which workloads are predicted as restarted is read only by ``injection``, so it
reaches a flow only through the two enrolments above (the view's Linkerd config, also read by the
authorization rules, is part of the configuration).

Objects are compared by equality (a view's objects are never edited after indexing; identical objects
compare at once), so an input that changes in any way means the flow is evaluated again: a reuse can
be missed, never wrong.
"""

from __future__ import annotations

from typing import Any

from runbook_engine.kube.flow import Flow
from runbook_engine.mesh.flows import FlowResult, Target, evaluate_flow, resolve_caller, target_resolution
from runbook_engine.mesh.injection import workload_enrolment
from runbook_engine.mesh.model import WORKLOAD_KINDS, MeshView, Obj

#: Kinds whose objects reach a flow only as its caller's or target's workload, pods or namespace.
PER_FLOW_KINDS: frozenset[str] = WORKLOAD_KINDS | {"Pod", "Namespace"}


def configuration(view: MeshView) -> tuple[Any, ...]:
    """Everything in ``view`` a flow may read besides its caller and target (see the module docstring)."""
    objects = tuple(
        (kind, tuple(found)) for kind, found in sorted(view.by_kind.items()) if found and kind not in PER_FLOW_KINDS
    )
    return (view.mesh, view.linkerd, objects)


class Predictions:
    """The flow results of one state, memoised, reusing ``previous``'s results whose inputs are equal."""

    def __init__(self, view: MeshView, previous: Predictions | None = None) -> None:
        self.view = view
        self.reused = 0  # results taken from the previous state (for measurements and tests)
        self._results: dict[Flow, FlowResult] = {}
        self._callers: dict[str, tuple[Any, ...]] = {}
        self._targets: dict[str, tuple[Any, ...]] = {}
        self._same_caller: dict[str, bool] = {}
        self._same_target: dict[str, bool] = {}
        self._configuration = configuration(view)
        self._previous = previous if previous is not None and previous._configuration == self._configuration else None

    def result(self, flow: Flow) -> FlowResult:
        found = self._results.get(flow)
        if found is None:
            found = self._reusable(flow)
            if found is None:
                found = evaluate_flow(self.view, flow)
            else:
                self.reused += 1
            self._results[flow] = found
        return found

    def _reusable(self, flow: Flow) -> FlowResult | None:
        previous = self._previous
        if previous is None:
            return None
        found = previous._results.get(flow)
        if found is None or not self._same_inputs(flow, previous):
            return None
        return found

    def _same_inputs(self, flow: Flow, previous: Predictions) -> bool:
        """Whether the caller and target inputs of ``flow`` equal those in ``previous``."""
        same_caller = self._same_caller.get(flow.source)
        if same_caller is None:
            same_caller = self.caller_inputs(flow) == previous.caller_inputs(flow)
            self._same_caller[flow.source] = same_caller
        if not same_caller:
            return False
        same_target = self._same_target.get(flow.to)
        if same_target is None:
            same_target = self._same_target[flow.to] = self.target_inputs(flow) == previous.target_inputs(flow)
        return same_target

    def caller_inputs(self, flow: Flow) -> tuple[Any, ...]:
        """What the evaluation reads about the caller of ``flow`` (depends on ``flow.source`` only)."""
        found = self._callers.get(flow.source)
        if found is None:
            caller = resolve_caller(self.view, flow)
            namespace = self.view.namespaces.get(caller.workload.namespace) if caller.workload else None
            found = self._callers[flow.source] = (caller, namespace)
        return found

    def target_inputs(self, flow: Flow) -> tuple[Any, ...]:
        """What the evaluation reads about the destination of ``flow`` (depends on ``flow.to`` only)."""
        found = self._targets.get(flow.to)
        if found is None:
            found = self._targets[flow.to] = self._target_inputs(flow)
        return found

    def _target_inputs(self, flow: Flow) -> tuple[Any, ...]:
        if flow.is_external_destination:
            return ("external",)  # egress reads the caller and the configuration only
        namespace = self.view.namespaces.get(str(flow.dest_namespace))
        service: Obj | None = self.view.services.get(flow.dest_host)
        target = target_resolution(self.view, flow)
        if isinstance(target, Target):
            return (target, workload_enrolment(self.view, target.workload), service, namespace)
        return (target, service, namespace)  # resolution stops: (outcome, reason)
