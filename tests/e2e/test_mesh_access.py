"""roles/mesh_access renders engine-neutral access values into Istio or Linkerd objects, deterministically.

The role's template is rendered the way ``k8s_apply: {template: ...}`` renders it (the engine's
sandboxed Jinja2), from the cases in ``cases/mesh_access.yaml``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.errors import Location
from runbook_engine.spec.templating import Templar

ROLE = Path(__file__).resolve().parents[2] / "roles" / "mesh_access"
CASES = yaml.safe_load((Path(__file__).parent / "cases" / "mesh_access.yaml").read_text())


def render(workloads: list[dict[str, Any]], **extra: Any) -> str:
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()), **extra,
                 "access_workloads": workloads}
    template = ROLE / "templates" / "access.yaml.j2"
    return Templar(variables).render_text(template.read_text(), location=Location(str(template), 1, 1))


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def dig(obj: Any, path: list[str | int]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_renders_the_expected_objects(case: dict[str, Any]) -> None:
    rendered = objects(render(case["workloads"], **({"node_networks": case["node_networks"]}
                                                    if "node_networks" in case else {})))
    for want in case["expect"]:
        key = (want["kind"], want["name"])
        if want.get("absent"):
            assert key not in rendered
        else:
            assert dig(rendered[key], want["path"]) == want["equals"]


def test_same_values_in_any_order_render_the_same_bytes() -> None:
    unique = {(w["namespace"], w["name"]): w for case in CASES for w in case["workloads"]}
    workloads = list(unique.values())
    shuffled = [dict(w, ports=random.sample(w["ports"], len(w["ports"]))) for w in workloads]
    random.Random(7).shuffle(shuffled)

    assert render(workloads) == render(shuffled)
    assert render(workloads) == render(workloads)
