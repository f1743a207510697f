"""Variable precedence: merge_scopes applies Ansible's order, and docs/variables.md documents that order."""

from __future__ import annotations

import re
from pathlib import Path

from runbook_engine.spec.templating import Templar
from runbook_engine.spec.vars import MAGIC_VARS, Scope, merge_scopes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "variables.md"


def test_each_scope_beats_every_lower_one() -> None:
    layers = {scope: {"x": scope.name, scope.name.lower(): True} for scope in reversed(Scope)}
    merged = merge_scopes(layers)
    assert merged["x"] == Scope.MAGIC.name
    for lower in Scope:
        if lower is Scope.MAGIC:
            continue
        upper = Scope(lower + 1)
        assert merge_scopes({lower: {"x": "low"}, upper: {"x": "high"}})["x"] == "high", (lower, upper)
    assert all(merged[s.name.lower()] for s in Scope)


def test_the_usual_stack() -> None:
    merged = merge_scopes({
        Scope.EXTRA: {"revision": "1-23"},
        Scope.ROLE_DEFAULTS: {"timeout": 300, "revision": "1-20", "replicas": 1},
        Scope.INVENTORY: {"timeout": 600, "mesh_namespace": "istio-system"},
        Scope.PLAY: {"revision": "1-22"},
        Scope.TASK: {"replicas": 3},
        Scope.FACTS: [{"restarted": False}, {"restarted": True}],
        Scope.BLOCK: [{"where": "outer", "outer": 1}, {"where": "inner"}],
    })  # fmt: skip
    assert merged == {
        "timeout": 600,  # inventory beats role defaults
        "revision": "1-23",  # -e beats the play
        "replicas": 3,  # the task's vars beat role defaults
        "mesh_namespace": "istio-system",
        "restarted": True,  # later facts replace earlier ones
        "where": "inner",  # inner blocks beat outer ones
        "outer": 1,
    }


def test_dictionaries_are_replaced_not_merged() -> None:
    merged = merge_scopes({Scope.PLAY: {"labels": {"a": "1"}}, Scope.TASK: {"labels": {"b": "2"}}})
    assert merged["labels"] == {"b": "2"}


def test_lazy_templating_sees_the_winning_values() -> None:
    merged = merge_scopes({
        Scope.ROLE_DEFAULTS: {"ns": "{{ app }}-mesh", "app": "default"},
        Scope.INVENTORY: {"app": "payments"},
    })  # fmt: skip
    assert Templar(merged).render("{{ ns }}") == "payments-mesh"


def test_docs_list_every_scope_in_precedence_order() -> None:
    text = DOCS.read_text()
    documented = re.findall(r"`Scope\.([A-Z_]+)`", text)
    assert documented == [s.name for s in Scope]
    for name in MAGIC_VARS:
        assert f"`{name}`" in text
