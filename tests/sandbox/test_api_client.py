"""The sandbox API server through the official kubernetes client, over HTTPS with the kubeconfig it
writes: discovery of every kind, the verbs, patches, server-side apply, deletion with garbage
collection, dry run, watches, authentication, CRDs, API faults and persistence."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_support import manifest, raw
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from runbook_engine.kube.refs import REGISTRY, KindInfo
from runbook_engine.sandbox.server import SandboxServer

CASES = Path(__file__).parent / "api_cases"
NS = "default"


def _error(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def _deployment(name: str = "web", **labels: str) -> dict[str, Any]:
    container = {"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 8080}]}
    return manifest(
        "apps/v1", "Deployment", name,
        spec={
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container, {"name": "sidecar", "image": "envoy:1"}],
                         "volumes": [{"name": "data", "emptyDir": {}}]},
            },
        },
    ) | {"metadata": {"name": name, "namespace": NS, "labels": {"app": name, "tier": "front", **labels}}}


def _kind_params() -> list[Any]:
    return [pytest.param(info, id=f"{info.api_version}/{info.kind}") for info in REGISTRY]


def _resource(dyn: dynamic.DynamicClient, api_version: str, kind: str) -> Any:
    return dyn.resources.get(api_version=api_version, kind=kind)


# -- discovery and reads -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_dyn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dynamic.DynamicClient]:
    """One server and client for the per-kind tests (each uses its own object names)."""
    with SandboxServer(tmp_path_factory.mktemp("kinds"), controllers=False) as server:
        yield dynamic.DynamicClient(config.new_client_from_config(config_file=str(server.kubeconfig)))


@pytest.mark.parametrize("info", _kind_params())
def test_every_registered_kind_is_discovered_created_listed_and_read(
    module_dyn: dynamic.DynamicClient, info: KindInfo
) -> None:
    res = _resource(module_dyn, info.api_version, info.kind)
    assert (res.namespaced, res.kind, res.name) == (info.namespaced, info.kind, info.plural)
    name = f"sample-{info.kind.lower()}"
    namespace = NS if info.namespaced else None
    res.create(body=manifest(info.api_version, info.kind, name, namespace))
    listed = res.get(namespace=namespace) if namespace else res.get()
    assert name in [item.metadata.name for item in listed.items]
    got = res.get(name=name, namespace=namespace) if namespace else res.get(name=name)
    assert got.metadata.uid and got.metadata.resourceVersion


def test_version_and_short_names_are_discovered(api: client.ApiClient, dyn: dynamic.DynamicClient) -> None:
    assert client.VersionApi(api).get_code().major == "1"
    assert _resource(dyn, "apps/v1", "Deployment").short_names == ["deploy"]


def test_label_selectors_equality_and_set_based(core: client.CoreV1Api) -> None:
    for name, labels in {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "db"}, "c": {"tier": "cache"}}.items():
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return sorted(cm.metadata.name for cm in core.list_namespaced_config_map(NS, label_selector=selector).items)

    assert names("tier=web") == ["a"]
    assert names("tier in (web,db)") == ["a", "b"]
    assert names("tier notin (web),!env") == ["b", "c"]
    assert names("env") == ["a"]


def test_field_selectors_on_name_namespace_phase_and_node(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    for ns, name, node in ((NS, "p1", "node-a"), (NS, "p2", "node-b"), ("other", "p3", "node-a")):
        core.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "nginx"}]}})
    core.patch_namespaced_pod_status("p2", NS, {"status": {"phase": "Running"}})

    def names(selector: str) -> list[str]:
        return sorted(p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector=selector).items)

    assert names("metadata.name=p1") == ["p1"]
    assert names("metadata.namespace=other") == ["p3"]
    assert names("status.phase=Running") == ["p2"]
    assert names("status.phase!=Running,spec.nodeName=node-a") == ["p1", "p3"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS, field_selector="spec.image=x")
    assert err.value.status == 400 and "field label not supported" in _error(err.value)["message"]


def test_lists_come_in_namespace_then_name_order(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "alpha"}})
    created = ((NS, "zeta"), ("alpha", "omega"), (NS, "beta"), ("alpha", "delta"), (NS, "alpha"))
    for namespace, name in created:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})

    listed = [(c.metadata.namespace, c.metadata.name) for c in core.list_config_map_for_all_namespaces().items]
    assert [item for item in listed if item in created] == sorted(created)
    in_default = [c.metadata.name for c in core.list_namespaced_config_map(NS).items]
    assert [name for name in in_default if (NS, name) in created] == ["alpha", "beta", "zeta"]


def test_list_pages_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{i}"}})
    first = core.list_namespaced_config_map(NS, limit=3)
    rest = core.list_namespaced_config_map(NS, limit=3, _continue=first.metadata._continue)
    assert [c.metadata.name for c in first.items + rest.items] == [f"cm-{i}" for i in range(5)]
    assert rest.metadata._continue is None


# -- status codes and Status bodies --------------------------------------------------------------


def test_not_found_already_exists_and_invalid_status_bodies(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    with pytest.raises(ApiException) as missing:
        deployments.get(name="nope", namespace=NS)
    assert missing.value.status == 404
    assert _error(missing.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404,
    }
    deployments.create(body=_deployment())
    with pytest.raises(ApiException) as exists:
        deployments.create(body=_deployment())
    assert (exists.value.status, _error(exists.value)["reason"]) == (409, "AlreadyExists")
    nameless = _deployment()
    del nameless["metadata"]["name"]
    with pytest.raises(ApiException) as bad:
        deployments.create(body=nameless, namespace=NS)
    body = _error(bad.value)
    assert (bad.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"] == [{"reason": "FieldValueRequired", "field": "metadata.name",
                                          "message": "Required value: name or generateName is required"}]


def test_create_in_a_missing_namespace_is_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ghost", {"metadata": {"name": "x"}})
    assert err.value.status == 404 and _error(err.value)["message"] == 'namespaces "ghost" not found'


def test_update_with_a_stale_resource_version_is_a_conflict(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "cfg"}, "data": {"k": "1"}})
    created.data = {"k": "2"}
    updated = core.replace_namespaced_config_map("cfg", NS, created)
    assert updated.data == {"k": "2"}
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"k": "3"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cfg", NS, created)  # still carries the old resourceVersion
    assert err.value.status == 409 and _error(err.value)["reason"] == "Conflict"
    assert "the object has been modified" in _error(err.value)["message"]


def test_generation_moves_with_spec_but_not_with_labels(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    created = deployments.create(body=_deployment())
    labelled = deployments.patch(name="web", namespace=NS, body={"metadata": {"labels": {"x": "y"}}},
                                 content_type="application/merge-patch+json")
    scaled = deployments.patch(name="web", namespace=NS, body={"spec": {"replicas": 4}},
                               content_type="application/merge-patch+json")
    assert (created.metadata.generation, labelled.metadata.generation, scaled.metadata.generation) == (1, 1, 2)


# -- patches -------------------------------------------------------------------------------------


def _at(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@pytest.mark.parametrize("case", yaml.safe_load((CASES / "patches.yaml").read_text()), ids=lambda c: c["name"])
def test_patch_types(dyn: dynamic.DynamicClient, case: dict[str, Any]) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    deployments.create(body=_deployment())
    deployments.patch(name="web", namespace=NS, body=case["patch"], content_type=case["type"])
    result = deployments.get(name="web", namespace=NS).to_dict()
    for path, expected in case["expect"].items():
        assert _at(result, path) == expected, path


def test_invalid_json_patch_is_unprocessable(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    deployments.create(body=_deployment())
    with pytest.raises(ApiException) as err:
        deployments.patch(name="web", namespace=NS, body=[{"op": "remove", "path": "/spec/missing"}],
                          content_type="application/json-patch+json")
    assert err.value.status == 422 and _error(err.value)["reason"] == "Invalid"


def test_strategic_merge_on_a_custom_resource_is_unsupported(dyn: dynamic.DynamicClient) -> None:
    policies = _resource(dyn, "security.istio.io/v1", "PeerAuthentication")
    policies.create(body=manifest("security.istio.io/v1", "PeerAuthentication", "default", NS,
                                  spec={"mtls": {"mode": "PERMISSIVE"}}))
    with pytest.raises(ApiException) as err:
        policies.patch(name="default", namespace=NS, body={"spec": {"mtls": {"mode": "STRICT"}}},
                       content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415
    merged = policies.patch(name="default", namespace=NS, body={"spec": {"mtls": {"mode": "STRICT"}}},
                            content_type="application/merge-patch+json")
    assert merged.spec.mtls.mode == "STRICT"


# -- server-side apply ---------------------------------------------------------------------------


def _apply(res: Any, body: dict[str, Any], manager: str, force: bool = False) -> Any:
    return res.server_side_apply(body=body, name=body["metadata"]["name"], namespace=NS,
                                 field_manager=manager, force_conflicts=force)


def test_server_side_apply_creates_and_records_managed_fields(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    created = _apply(deployments, _deployment(), "runbook-engine")
    entries = created.to_dict()["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"], e["fieldsType"]) for e in entries] == [
        ("runbook-engine", "Apply", "FieldsV1")
    ]
    fields = entries[0]["fieldsV1"]
    assert "f:replicas" in fields["f:spec"]
    assert 'k:{"name":"app"}' in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]


def test_server_side_apply_conflict_names_manager_and_field_until_forced(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    _apply(deployments, _deployment(), "team-a")
    change = _deployment()
    change["spec"]["replicas"] = 7
    with pytest.raises(ApiException) as err:
        _apply(deployments, change, "team-b")
    body = _error(err.value)
    assert (err.value.status, body["reason"]) == (409, "Conflict")
    assert body["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "team-a" using apps/v1', "field": ".spec.replicas"}
    ]
    assert deployments.get(name="web", namespace=NS).spec.replicas == 2
    forced = _apply(deployments, change, "team-b", force=True)
    assert forced.spec.replicas == 7
    owners = {e["manager"]: e["fieldsV1"] for e in forced.to_dict()["metadata"]["managedFields"]}
    assert "f:replicas" in owners["team-b"]["f:spec"] and "f:replicas" not in owners["team-a"]["f:spec"]


def test_server_side_apply_with_equal_values_shares_ownership(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    _apply(deployments, _deployment(), "team-a")
    shared = _apply(deployments, _deployment(), "team-b")  # same values: no conflict
    assert sorted(e["manager"] for e in shared.to_dict()["metadata"]["managedFields"]) == ["team-a", "team-b"]


def test_server_side_apply_removes_fields_a_manager_stops_applying(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    _apply(deployments, _deployment(extra="yes"), "runbook-engine")
    trimmed = _deployment()
    trimmed["spec"]["template"]["spec"]["containers"] = trimmed["spec"]["template"]["spec"]["containers"][:1]
    result = _apply(deployments, trimmed, "runbook-engine")
    assert "extra" not in result.to_dict()["metadata"]["labels"]
    assert [c["name"] for c in result.to_dict()["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_server_side_apply_conflicts_with_a_field_set_by_an_update(dyn: dynamic.DynamicClient) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    _apply(deployments, _deployment(), "runbook-engine")
    deployments.patch(name="web", namespace=NS, body={"metadata": {"labels": {"tier": "back"}}},
                      content_type="application/merge-patch+json", field_manager="kubectl-label")
    with pytest.raises(ApiException) as err:
        _apply(deployments, _deployment(), "runbook-engine")
    assert _error(err.value)["details"]["causes"][0]["field"] == ".metadata.labels.tier"


def test_apply_without_field_manager_is_a_bad_request(api_server: SandboxServer) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    code, status = raw(api_server, "PATCH", "/api/v1/namespaces/default/configmaps/x", body,
                       "application/apply-patch+yaml")
    assert (code, status["reason"]) == (400, "BadRequest")
    assert "fieldManager" in status["message"]


# -- deletion and garbage collection ---------------------------------------------------------------


def _family(core: client.CoreV1Api) -> str:
    owner = core.create_namespaced_config_map(NS, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    child = core.create_namespaced_config_map(NS, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    grandchild_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child.metadata.uid}
    core.create_namespaced_config_map(NS, {"metadata": {"name": "grandchild", "ownerReferences": [grandchild_ref]}})
    return str(owner.metadata.uid)


def _names(core: client.CoreV1Api) -> list[str]:
    return sorted(c.metadata.name for c in core.list_namespaced_config_map(NS).items)


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_delete_collects_dependents_transitively(core: client.CoreV1Api, policy: str) -> None:
    _family(core)
    core.delete_namespaced_config_map("owner", NS, propagation_policy=policy)
    assert _names(core) == []


def test_delete_with_orphan_keeps_dependents_without_owner_reference(core: client.CoreV1Api) -> None:
    _family(core)
    core.delete_namespaced_config_map("owner", NS, propagation_policy="Orphan")
    assert _names(core) == ["child", "grandchild"]
    assert core.read_namespaced_config_map("child", NS).metadata.owner_references is None


def test_delete_returns_success_status_and_deleting_twice_is_not_found(api_server: SandboxServer,
                                                                      core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "gone"}})
    code, status = raw(api_server, "DELETE", "/api/v1/namespaces/default/configmaps/gone")
    assert (code, status) == (200, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": "gone", "kind": "configmaps", "uid": created.metadata.uid},
    })
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("gone", NS)
    assert err.value.status == 404


def test_finalizers_hold_an_object_until_removed(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("held", NS)
    marked = core.read_namespaced_config_map("held", NS)
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    assert _names(core) == []


def test_deleting_a_namespace_deletes_its_objects(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "x"}})
    core.delete_namespace("doomed")
    assert core.list_namespaced_config_map("doomed").items == []


def test_delete_collection_by_label(core: client.CoreV1Api) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map(NS, label_selector="team=x")
    assert _names(core) == ["c"]


# -- dry run ---------------------------------------------------------------------------------------


def test_dry_run_writes_nothing(core: client.CoreV1Api, dyn: dynamic.DynamicClient) -> None:
    would = core.create_namespaced_config_map(NS, {"metadata": {"name": "dry"}, "data": {"a": "1"}}, dry_run="All")
    assert would.metadata.uid and would.data == {"a": "1"}
    assert _names(core) == []
    core.create_namespaced_config_map(NS, {"metadata": {"name": "real"}, "data": {"a": "1"}})
    patched = core.patch_namespaced_config_map("real", NS, {"data": {"a": "2"}}, dry_run="All")
    assert patched.data == {"a": "2"}
    applied = _resource(dyn, "v1", "ConfigMap").server_side_apply(
        body=manifest("v1", "ConfigMap", "real", NS, data={"a": "3"}), name="real", namespace=NS,
        field_manager="m", force_conflicts=True, dry_run="All")
    assert applied.to_dict()["data"] == {"a": "3"}
    core.delete_namespaced_config_map("real", NS, dry_run="All")
    assert core.read_namespaced_config_map("real", NS).data == {"a": "1"}


# -- subresources ------------------------------------------------------------------------------------


def test_status_subresource_and_main_resource_write_separately(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    core.patch_namespaced_pod_status("p", NS, {"status": {"phase": "Running", "podIP": "10.0.0.9"}})
    core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}})
    pod = core.read_namespaced_pod("p", NS)
    assert (pod.status.phase, pod.status.pod_ip, pod.metadata.labels) == ("Running", "10.0.0.9", {"a": "b"})


def test_scale_subresource(dyn: dynamic.DynamicClient, api: client.ApiClient) -> None:
    _resource(dyn, "apps/v1", "Deployment").create(body=_deployment())
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_deployment_scale("web", NS).spec.replicas == 2
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 6}})
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 6


def test_pod_logs_come_from_the_store(api_server: SandboxServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app", "image": "i"}, {"name": "istio-proxy", "image": "proxy"}]}})
    api_server.store.set_pod_log(NS, "p", "app", "line 1\nline 2\nline 3\n")
    assert core.read_namespaced_pod_log("p", NS, container="app") == "line 1\nline 2\nline 3\n"
    assert core.read_namespaced_pod_log("p", NS, container="app", tail_lines=1) == "line 3\n"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", NS)
    assert err.value.status == 400 and "choose one of: [app istio-proxy]" in _error(err.value)["message"]


# -- watch ---------------------------------------------------------------------------------------------


def test_watch_streams_added_modified_deleted(api: client.ApiClient, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "before"}})
    events: list[tuple[str, str]] = []
    started = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        started.set()
        for event in w.stream(client.CoreV1Api(api).list_namespaced_config_map, NS, timeout_seconds=5):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    started.wait()
    time.sleep(0.3)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "w"}})
    core.patch_namespaced_config_map("w", NS, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("w", NS)
    thread.join(timeout=10)
    assert events == [("ADDED", "before"), ("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_from_a_resource_version_replays_later_changes(core: client.CoreV1Api, api: client.ApiClient) -> None:
    listed = core.list_namespaced_config_map(NS)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "later", "labels": {"k": "v"}}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "unlabelled"}})
    stream = watch.Watch().stream(core.list_namespaced_config_map, NS, label_selector="k=v",
                                  resource_version=listed.metadata.resource_version, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in stream] == [("ADDED", "later")]


# -- authentication, CRDs, faults, persistence ------------------------------------------------------


def test_admin_endpoint_requires_the_token(api_server: SandboxServer) -> None:
    code, status = raw(api_server, "GET", "/sandbox/admin/faults", token="")
    assert (code, status["reason"]) == (401, "Unauthorized")


def test_requests_without_the_token_are_unauthorized(api_server: SandboxServer) -> None:
    cfg = client.Configuration()
    cfg.host = api_server.url
    cfg.ssl_ca_cert = str(api_server.state_dir / "tls" / "ca.crt")  # TLS trusted, but no token
    with client.ApiClient(cfg) as anonymous, pytest.raises(ApiException) as err:
        client.CoreV1Api(anonymous).list_namespace()
    assert err.value.status == 401 and _error(err.value)["reason"] == "Unauthorized"


def test_kubeconfig_is_private_and_names_the_sandbox_context(api_server: SandboxServer) -> None:
    assert api_server.kubeconfig.stat().st_mode & 0o777 == 0o600
    kubeconfig = yaml.safe_load(api_server.kubeconfig.read_text())
    assert kubeconfig["current-context"] == "sandbox"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == api_server.url


def _crd(group: str = "example.com") -> dict[str, Any]:
    return manifest("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}", None, spec={
        "group": group, "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wdg"]},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object"}}}],
    })


def test_a_created_crd_serves_its_kind_until_deleted(api_server: SandboxServer) -> None:
    api_client = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    crds = dynamic.DynamicClient(api_client).resources.get(api_version="apiextensions.k8s.io/v1",
                                                           kind="CustomResourceDefinition")
    created = crds.create(body=_crd())
    assert {c.type for c in created.status.conditions} >= {"Established"}
    fresh = dynamic.DynamicClient(config.new_client_from_config(config_file=str(api_server.kubeconfig)))
    widgets = fresh.resources.get(api_version="example.com/v1", kind="Widget")
    assert widgets.short_names == ["wdg"]
    widgets.create(body=manifest("example.com/v1", "Widget", "w1", NS, spec={"size": 3}))
    assert widgets.get(name="w1", namespace=NS).spec.size == 3
    crds.delete(name="widgets.example.com")
    code, _ = raw(api_server, "GET", "/apis/example.com/v1/namespaces/default/widgets")
    assert code == 404
    code, _ = raw(api_server, "GET", "/apis/example.com/v1")
    assert code == 404


def _admin(server: SandboxServer, method: str, body: Any = None) -> Any:
    code, data = raw(server, method, "/sandbox/admin/faults", body)
    assert code in (200, 201), data
    return data


def test_injected_api_errors_are_server_errors_for_the_matching_verb_only(
    api_server: SandboxServer, dyn: dynamic.DynamicClient
) -> None:
    deployments = _resource(dyn, "apps/v1", "Deployment")
    deployments.create(body=_deployment())
    api_server.faults.seed(7)
    rule = _admin(api_server, "POST", {"api_error": {"status": 500, "verb": "patch", "resource": "deployments",
                                              "probability": 0.3}})["fault"]
    assert rule["probability"] == 0.3
    failures = 0
    for i in range(40):
        try:
            deployments.patch(name="web", namespace=NS, body={"metadata": {"labels": {"i": str(i)}}},
                              content_type="application/merge-patch+json")
        except ApiException as exc:
            assert exc.status == 500 and _error(exc)["reason"] == "InternalError"
            assert _error(exc)["message"] == "Internal error occurred: injected fault"
            failures += 1
    assert 6 <= failures <= 18  # about 30% (seeded, so repeatable)
    assert deployments.get(name="web", namespace=NS).metadata.labels["i"]  # reads are never affected
    assert _admin(api_server, "DELETE") == {"faults": []}
    deployments.patch(name="web", namespace=NS, body={"spec": {"replicas": 1}},
                      content_type="application/merge-patch+json")


def test_counted_fault_fails_exactly_that_many_requests(api_server: SandboxServer, core: client.CoreV1Api) -> None:
    _admin(api_server, "POST", {"api_error": {"status": 503, "verb": "create", "resource": "configmaps", "count": 2}})
    codes = []
    for i in range(3):
        try:
            core.create_namespaced_config_map(NS, {"metadata": {"name": f"c{i}"}})
            codes.append(201)
        except ApiException as exc:
            codes.append(exc.status)
    assert codes == [503, 503, 201]
    assert _admin(api_server, "GET") == {"faults": []}


def test_latency_fault_delays_matching_requests(api_server: SandboxServer, core: client.CoreV1Api) -> None:
    _admin(api_server, "POST", {"api_latency": {"seconds": 0.3, "verb": "list", "resource": "pods"}})
    started = time.monotonic()
    core.list_namespaced_pod(NS)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    core.list_namespaced_config_map(NS)
    assert time.monotonic() - started < 0.3


def test_state_survives_stop_and_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with SandboxServer(state, controllers=False) as first:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(first.kubeconfig)))
        kept = core.create_namespaced_config_map(NS, {"metadata": {"name": "kept"}, "data": {"a": "1"}})
        first.store.set_pod_log(NS, "p", "c", "hello\n")
        dynamic.DynamicClient(core.api_client).resources.get(
            api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition").create(body=_crd())
    assert (state / "state.json").stat().st_mode & 0o777 == 0o600
    with SandboxServer(state, controllers=False) as second:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(second.kubeconfig)))
        again = core.read_namespaced_config_map("kept", NS)
        assert (again.metadata.uid, again.data) == (kept.metadata.uid, {"a": "1"})
        newer = core.create_namespaced_config_map(NS, {"metadata": {"name": "newer"}})
        assert int(newer.metadata.resource_version) > int(kept.metadata.resource_version)
        assert second.store.get_pod_log(NS, "p", "c") == "hello\n"
        widgets = dynamic.DynamicClient(core.api_client).resources.get(api_version="example.com/v1", kind="Widget")
        assert widgets.get(namespace=NS).items == []


def test_state_is_saved_shortly_after_writes_without_a_stop(api_server: SandboxServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "soon"}})
    deadline = time.monotonic() + 5
    saved: list[str] = []
    while time.monotonic() < deadline and "soon" not in saved:
        time.sleep(0.2)
        if (api_server.state_dir / "state.json").exists():
            state = json.loads((api_server.state_dir / "state.json").read_text())
            saved = [o["metadata"]["name"] for o in state["objects"]]
    assert "soon" in saved


def test_watch_from_a_compacted_revision_is_gone(monkeypatch: pytest.MonkeyPatch, core: client.CoreV1Api) -> None:
    monkeypatch.setattr("runbook_engine.sandbox.store._HISTORY", 3)
    first = core.create_namespaced_config_map(NS, {"metadata": {"name": "c0"}})
    for i in range(1, 6):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"c{i}"}})
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=1,
                                  resource_version=first.metadata.resource_version))
    assert err.value.status == 410


def _fetch(server: SandboxServer, path: str, headers: dict[str, str]) -> tuple[str, bytes]:
    context = ssl.create_default_context(cafile=str(server.state_dir / "tls" / "ca.crt"))
    request = urllib.request.Request(server.url + path, headers=headers)
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        return str(response.headers["Content-Type"]), bytes(response.read())


def test_metrics_are_served_without_a_token(tmp_path: Path) -> None:
    with SandboxServer(tmp_path / "m", controllers=False, metrics=lambda: "sandbox_up 1\n") as server:
        content_type, body = _fetch(server, "/metrics", {})
    assert content_type.startswith("text/plain") and body == b"sandbox_up 1\n"


def test_aggregated_discovery_lists_every_group_for_kubectl(api_server: SandboxServer) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    content_type, body = _fetch(api_server, "/apis", {"Accept": accept, "Authorization": f"Bearer {api_server.token}"})
    assert content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    groups = {g["metadata"]["name"]: g for g in json.loads(body)["items"]}
    assert {i.group for i in REGISTRY if i.group} == set(groups)
    apps = {r["resource"]: r for r in groups["apps"]["versions"][0]["resources"]}
    assert apps["deployments"]["scope"] == "Namespaced"
    assert {s["subresource"] for s in apps["deployments"]["subresources"]} == {"status", "scale"}


def test_openapi_v3_declares_server_side_field_validation(api_server: SandboxServer) -> None:
    auth = {"Authorization": f"Bearer {api_server.token}"}
    index = json.loads(_fetch(api_server, "/openapi/v3", auth)[1])
    document = json.loads(_fetch(api_server, index["paths"]["apis/apps/v1"]["serverRelativeURL"], auth)[1])
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]


@pytest.mark.parametrize(("body", "code"), [(b"k8s\x00\x0a\xff", 400), (b"not protobuf", 415)])
def test_unreadable_protobuf_bodies_are_refused(api_server: SandboxServer, body: bytes, code: int) -> None:
    status, error = raw(api_server, "POST", "/api/v1/namespaces/default/configmaps", body,
                        "application/vnd.kubernetes.protobuf")
    assert (status, error["code"]) == (code, code)
