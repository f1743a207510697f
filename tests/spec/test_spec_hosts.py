"""Host patterns select clusters the way Ansible's do, in inventory order."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.hosts import match_hosts, select_clusters
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.model import InventorySpec

PRECEDENCE = Path(__file__).parent / "cases" / "inventories" / "precedence"


@pytest.fixture(scope="module")
def inventory() -> InventorySpec:
    return load_inventory(PRECEDENCE, extra_vars={"kube_dir": "/k"})


@pytest.mark.parametrize(
    ("pattern", "clusters"),
    [
        ("all", ("eu-1", "lab", "edge")),
        ("eu", ("eu-1",)),
        ("edge", ("edge",)),
        ("edge,eu", ("eu-1", "edge")),
        ("canary:eu", ("eu-1", "lab")),
        ("canary:!eu", ("lab",)),
        ("all:&canary", ("eu-1", "lab")),
        ("all:!canary", ("edge",)),
        ("e*", ("eu-1", "edge")),
        ("~^(lab|edge)$", ("lab", "edge")),
        ("~^(?:lab|edge)$,eu", ("eu-1", "lab", "edge")),
        ("canary,!lab", ("eu-1",)),
        ("nothing", ()),
    ],
)
def test_patterns(inventory: InventorySpec, pattern: str, clusters: tuple[str, ...]) -> None:
    assert match_hosts(pattern, inventory) == clusters


def test_no_match_is_an_error_with_a_suggestion(inventory: InventorySpec) -> None:
    where = Location("play.yml", 2, 10)
    with pytest.raises(UserInputError) as caught:
        select_clusters("canari", inventory, location=where)
    assert caught.value.location == where
    assert caught.value.hint.startswith("did you mean 'canary'?")


def test_limit_intersects(inventory: InventorySpec) -> None:
    assert select_clusters("all", inventory, limit="canary:!eu-1") == ("lab",)
