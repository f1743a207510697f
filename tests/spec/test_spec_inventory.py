"""Inventory loading: Ansible's group/host variable precedence, groups, and cluster connections."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_engine.errors import UserInputError
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.model import InventorySpec

CASES = Path(__file__).parent / "cases"
PRECEDENCE = CASES / "inventories" / "precedence"


@pytest.fixture(scope="module")
def inventory() -> InventorySpec:
    return load_inventory(PRECEDENCE, extra_vars={"kube_dir": "/etc/kube"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("all_file_only", "all-file"),
        # group vars written in hosts.yml (any group) < group_vars/all < group_vars/<group>
        ("file_vs_all_dir", "all-dir"),
        ("by_depth", "eu_prod-file"),  # child group beats its parent
        ("siblings", "eu-file"),  # same depth: later name wins (canary < eu)
        ("by_dir_depth", "eu_prod-dir-a"),
        ("dir_files", "b"),  # files of group_vars/<group>/ load in name order
        ("host_file_vs_group_dir", "host-file"),  # host vars beat every group var
        ("host_file_vs_host_dir", "host-dir"),  # host_vars/ beats hosts.yml
    ],
)
def test_cluster_vars_follow_ansible_precedence(inventory: InventorySpec, name: str, value: str) -> None:
    assert inventory.clusters["eu-1"].vars[name] == value


def test_groups_include_children_members(inventory: InventorySpec) -> None:
    assert inventory.groups["eu"] == ("eu-1",)
    assert inventory.groups["all"] == ("eu-1", "lab", "edge")
    assert inventory.groups["canary"] == ("eu-1", "lab")
    assert inventory.clusters["eu-1"].groups == ("canary", "eu", "eu_prod")


def test_connections_resolve_relative_paths_and_templates(inventory: InventorySpec) -> None:
    eu1, lab, edge = (inventory.clusters[n] for n in ("eu-1", "lab", "edge"))
    assert eu1.sandbox == PRECEDENCE / "../../scenario.yaml"
    assert eu1.sandbox is not None and eu1.sandbox.is_file()
    assert eu1.prometheus_url == "http://127.0.0.1:9090"
    assert lab.kubeconfig == Path("/etc/kube/lab.yaml")
    assert lab.context is None and not lab.in_cluster
    assert edge.in_cluster and edge.kubeconfig is None and edge.sandbox is None
    assert eu1.location is not None and (eu1.location.line, eu1.location.column) == (16, 13)


def test_the_hosts_file_itself_may_be_given(inventory: InventorySpec) -> None:
    direct = load_inventory(PRECEDENCE / "hosts.yml", extra_vars={"kube_dir": "/etc/kube"})
    assert direct.clusters == inventory.clusters


def _write(tmp_path: Path, hosts: str) -> Path:
    (tmp_path / "hosts.yml").write_text(hosts)
    return tmp_path


@pytest.mark.parametrize(
    ("hosts", "line", "column", "fragment"),
    [
        ("all:\n  hosts:\n    a: {region: eu}\n", 3, 5, "has no connection"),
        ("all:\n  hosts:\n    a: {in_cluster: true, context: x}\n", 3, 36, "context applies only with kubeconfig"),
        ("all:\n  hosts:\n    a: {in_cluster: 'yes'}\n", 3, 21, "in_cluster must be true or false"),
        ("all:\n  hosts:\n    a: {in_cluster: true, prometheus_url: prom:9090}\n", 3, 43, "http(s) URL"),
        ("all:\n  hosts:\n    a: {sandbox: missing.yaml}\n", 3, 18, "sandbox scenario not found"),
        ("all:\n  hosts:\n    a: {kubeconfig: '{{ nope }}'}\n", 3, 21, "undefined variable 'nope'"),
        ("all:\n  host:\n    a: {in_cluster: true}\n", 2, 3, "unknown inventory group keyword 'host'"),
        (
            "all:\n  children:\n    g:\n      hosts: {a: {in_cluster: true}}\n"
            "      children:\n        h:\n          children:\n            g:\n",
            3, 5, "inventory group cycle: g -> h -> g",
        ),
        ("all:\n  vars: {}\n", 1, 1, "defines no clusters"),
    ],
)
def test_bad_inventories_are_located(tmp_path: Path, hosts: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(UserInputError) as caught:
        load_inventory(_write(tmp_path, hosts))
    location = caught.value.location
    assert location is not None
    assert (location.line, location.column) == (line, column), str(caught.value)
    assert fragment in caught.value.message


def test_a_directory_without_hosts_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"has no hosts\.yml"):
        load_inventory(tmp_path)


def test_kubeconfig_without_context_means_current_context(tmp_path: Path) -> None:
    inventory = load_inventory(_write(tmp_path, "all:\n  hosts:\n    a: {kubeconfig: ~/.kube/config}\n"))
    cluster = inventory.clusters["a"]
    assert cluster.kubeconfig == Path("~/.kube/config").expanduser()
    assert cluster.context is None
    assert inventory.groups["ungrouped"] == ("a",)
