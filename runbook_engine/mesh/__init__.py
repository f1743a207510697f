"""Pure mesh semantics over a set of objects: injection, mTLS resolution, authorization,
identities, flow outcomes and traffic impact. No I/O.

Build a ``MeshView`` once from plain manifests, then ask questions of it::

    view = MeshView.build(objects)
    result = evaluate_flow(view, flow)        # FlowResult(outcome, reasons)
    enrolment = workload_enrolment(view, view.workload("shop", "cart"))
"""

from runbook_engine.mesh.flows import FlowResult, evaluate_all, evaluate_flow
from runbook_engine.mesh.impact import FlowChange, Impact, impact, implied_flows, implied_inputs, merge_flows
from runbook_engine.mesh.injection import Enrolment, pod_enrolment, template_enrolment, workload_enrolment
from runbook_engine.mesh.model import Mesh, MeshView, ProxyForm, Workload
from runbook_engine.mesh.mtls import ModeResolution, MtlsMode, effective_mode
from runbook_engine.mesh.predictions import Predictions

__all__ = [
    "Enrolment",
    "FlowChange",
    "FlowResult",
    "Impact",
    "Mesh",
    "MeshView",
    "ModeResolution",
    "MtlsMode",
    "Predictions",
    "ProxyForm",
    "Workload",
    "effective_mode",
    "evaluate_all",
    "evaluate_flow",
    "impact",
    "implied_flows",
    "implied_inputs",
    "merge_flows",
    "pod_enrolment",
    "template_enrolment",
    "workload_enrolment",
]
