"""k8s_apply from files and templates, its input errors, and Secrets compared as the server stores them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from runbook_engine.errors import UserInputError
from runbook_engine.kube.change import ChangeKind
from runbook_engine.kube.memory import MemoryCluster

from .actions_support import Planner


def test_src_reads_every_document_and_defaults_the_namespace(plan: Planner) -> None:
    planned = plan("k8s_apply", {"src": "platform.yaml", "namespace": "shop"})
    assert [(c.kind, str(c.ref)) for c in planned.changes] == [(ChangeKind.CREATE, "ServiceAccount/shop/api")]
    assert planned.result["unchanged"] == ["ConfigMap/shop/cfg"]
    assert planned.msg == "1 to create, 1 already in desired state"


def test_template_renders_with_the_task_variables(plan: Planner) -> None:
    planned = plan("k8s_apply", {"template": "peer-auth.yaml.j2"},
                   variables={"namespaces": ["shop", "data"], "mode": "STRICT"})
    assert [str(c.ref) for c in planned.changes] == ["PeerAuthentication/shop/default",
                                                     "PeerAuthentication/data/default"]
    assert all(c.after and c.after["spec"] == {"mtls": {"mode": "STRICT"}} for c in planned.changes)


def test_template_with_an_undefined_variable_names_it(plan: Planner) -> None:
    with pytest.raises(UserInputError, match="undefined variable 'mode'") as err:
        plan("k8s_apply", {"template": "peer-auth.yaml.j2"}, variables={"namespaces": ["shop"]})
    assert err.value.location is not None and err.value.location.file.endswith("peer-auth.yaml.j2")


def test_yaml_error_names_file_line_and_column(plan: Planner) -> None:
    with pytest.raises(UserInputError, match="YAML syntax error") as err:
        plan("k8s_apply", {"src": "broken.yaml"})
    where = err.value.location
    assert where is not None and where.file.endswith("broken.yaml") and (where.line, where.column) == (5, 13)


def test_missing_file_lists_where_it_was_looked_for(plan: Planner, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"file not found: nope\.yaml") as err:
        plan("k8s_apply", {"src": "nope.yaml"}, base_dir=tmp_path)
    assert str(tmp_path / "files" / "nope.yaml") in err.value.hint


def test_namespaced_object_without_namespace_is_refused(plan: Planner) -> None:
    with pytest.raises(UserInputError, match="ServiceAccount/api is namespaced but has no namespace"):
        plan("k8s_apply", {"src": "platform.yaml"})


def test_object_without_a_name_is_refused(plan: Planner) -> None:
    with pytest.raises(UserInputError, match=r"missing metadata\.name"):
        plan("k8s_apply", {"definition": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}})


def test_cluster_scoped_object_drops_a_namespace(plan: Planner) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mesh"}}
    planned = plan("k8s_apply", {"definition": ns, "namespace": "shop"})
    assert str(planned.changes[0].ref) == "Namespace/mesh"
    assert planned.changes[0].after == ns


def test_secret_string_data_matches_stored_data(plan: Planner, cluster: MemoryCluster) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok", "namespace": "shop"},
                   "data": {"token": base64.b64encode(b"s3cret").decode()}})
    same = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok", "namespace": "shop"},
            "stringData": {"token": "s3cret"}}
    assert plan("k8s_apply", {"definition": same}).changes == []
    other = {**same, "stringData": {"token": "rotated"}}
    assert [c.kind for c in plan("k8s_apply", {"definition": other}).changes] == [ChangeKind.UPDATE]


def test_check_mode_plans_the_same_changes_and_writes_nothing(plan: Planner, cluster: MemoryCluster) -> None:
    writes = cluster.writes
    real = plan("k8s_apply", {"src": "platform.yaml", "namespace": "shop"})
    dry = plan("k8s_apply", {"src": "platform.yaml", "namespace": "shop"}, check_mode=True)
    assert [(c.kind, c.ref, c.after) for c in dry.changes] == [(c.kind, c.ref, c.after) for c in real.changes]
    assert cluster.writes == writes
