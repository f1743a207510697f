"""Table-driven mesh semantics: every case under ``tests/mesh/cases/*.yaml`` becomes one test.

A case names the objects (shorthands from ``mesh_builders.py`` or full manifests, plus shared ``fixtures``
of its file), one question (``mode``, ``flow``, ``enrolment``, ``identity`` or ``principal``) and the
expected answer. Each case cites the documentation it encodes in ``doc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mesh_builders import case_params, expand

from runbook_engine.kube.flow import Flow
from runbook_engine.mesh import MeshView, effective_mode, evaluate_flow, workload_enrolment
from runbook_engine.mesh.identity import istio_spiffe_id, linkerd_identity, principal_matches, spire_spiffe_id
from runbook_engine.mesh.injection import pod_enrolment, template_enrolment
from runbook_engine.mesh.model import MeshConfig

CASES_DIR = Path(__file__).parent / "cases"


def _contains(reasons: str, expected: str | list[str]) -> None:
    for text in [expected] if isinstance(expected, str) else expected:
        assert text.lower() in reasons.lower(), f"{text!r} not in reason chain: {reasons}"


def _check_mode(view: MeshView, question: dict[str, Any], expect: dict[str, Any]) -> None:
    ns, name = question["workload"].split("/")
    wl = view.workload(ns, name)
    assert wl is not None
    result = effective_mode(view, wl, question.get("port"), ambient=bool(question.get("ambient")))
    assert result.mode.value == expect["mode"], result.reasons
    if "source" in expect:
        _contains(result.source, expect["source"])


def _check_flow(view: MeshView, question: dict[str, Any], expect: dict[str, Any]) -> None:
    result = evaluate_flow(view, Flow.model_validate(question))
    assert result.outcome.value == expect["outcome"], result.summary
    if "reason" in expect:
        _contains(result.summary, expect["reason"])


def _check_enrolment(view: MeshView, question: dict[str, Any], expect: dict[str, Any]) -> None:
    ns, name = question["workload"].split("/")
    wl = view.workload(ns, name)
    assert wl is not None
    of = question.get("of", "effective")
    state = {
        "pod": lambda: pod_enrolment(view, wl.pods[0]),
        "template": lambda: template_enrolment(view, wl),
        "effective": lambda: workload_enrolment(view, wl),
    }[of]()
    for key in ("meshed", "needs_restart", "would_inject_on_restart"):
        if key in expect:
            assert getattr(state, key) == expect[key], (key, state)
    if "mesh" in expect:
        assert state.mesh.value == expect["mesh"], state
    if "form" in expect:
        assert state.form.value == expect["form"], state
    if "reason" in expect:
        _contains("; ".join(state.reasons), expect["reason"])


def _check_identity(question: dict[str, Any], expect: dict[str, Any]) -> None:
    kind = question["kind"]
    if kind == "istio":
        value = istio_spiffe_id(question["trust_domain"], question["namespace"], question["sa"])
    elif kind == "linkerd":
        value = linkerd_identity(
            question["namespace"], question["sa"], trust_domain=question.get("trust_domain", "cluster.local")
        )
    else:
        value = spire_spiffe_id(
            question["template"],
            trust_domain=question["trust_domain"],
            namespace=question["namespace"],
            service_account=question["sa"],
            pod=question.get("pod", "p"),
        )
    assert value == expect["value"]


def _check_principal(question: dict[str, Any], expect: dict[str, Any]) -> None:
    mesh = MeshConfig(
        trust_domain=question.get("trust_domain", "cluster.local"),
        trust_domain_aliases=tuple(question.get("aliases") or ()),
    )
    assert principal_matches(question["pattern"], question["principal"], mesh) is expect["match"]


@pytest.mark.parametrize(("case", "objects"), case_params(CASES_DIR, "objects"))
def test_case(case: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    expect = case["expect"]
    if "identity" in case:
        _check_identity(case["identity"], expect)
        return
    if "principal" in case:
        _check_principal(case["principal"], expect)
        return
    view = MeshView.build(expand(objects), restarted=case.get("restarted") or ())
    if "mode" in case:
        _check_mode(view, case["mode"], expect)
    elif "flow" in case:
        _check_flow(view, case["flow"], expect)
    elif "enrolment" in case:
        _check_enrolment(view, case["enrolment"], expect)
    else:
        raise AssertionError(f"case {case['id']} asks no question")


def test_every_case_file_cites_documentation() -> None:
    for path in CASES_DIR.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["cases"]:
            assert str(case.get("doc", "")).startswith("https://"), f"{path.name}::{case['id']} has no doc link"
