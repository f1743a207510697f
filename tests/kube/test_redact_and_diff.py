"""Secrets never leak through redaction or diffs; diffs show what a user set and nothing else."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml

from runbook_engine.kube.diff import diff_objects
from runbook_engine.kube.redact import redact_object, redact_text, secret_values

PLANTED = "s3cr3t-Planted-Value-9f2e"
B64 = base64.b64encode(PLANTED.encode()).decode()


def secret(value_b64: str = B64, string_data: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db",
            "namespace": "sre",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": {"p": value_b64}})},
        },
        "data": {"password": value_b64},
    }
    if string_data is not None:
        obj["stringData"] = {"token": string_data}
    return obj


def kubeconfig() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": PLANTED, "client-key-data": B64, "client-certificate-data": B64}}],
    }


def _leaks(text: str) -> bool:
    return PLANTED in text or B64 in text


def test_redact_object_masks_secret_data_string_data_and_last_applied() -> None:
    original = secret(string_data=PLANTED)
    redacted = redact_object(original)
    assert not _leaks(json.dumps(redacted))
    assert redacted["data"]["password"].startswith("***")
    assert original["data"]["password"] == B64, "redaction must not modify its input"


def test_redact_object_masks_kubeconfig_credentials() -> None:
    redacted = redact_object(kubeconfig())
    assert not _leaks(json.dumps(redacted))
    assert redacted["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"


def test_redact_object_masks_secrets_inside_lists() -> None:
    redacted = redact_object({"apiVersion": "v1", "kind": "List", "items": [secret()]})
    assert not _leaks(json.dumps(redacted))


def test_non_secret_objects_keep_their_data() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"password_hint": "ask"}}
    assert redact_object(cm) == cm


def test_redact_text_masks_given_secrets_bearer_tokens_jwts_and_keys() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl"
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"
    text = f"curl -H 'Authorization: Bearer abc.DEF-123' ok\nvalue={PLANTED} b64={B64}\n{jwt}\n{pem}\n"
    out = redact_text(text, secret_values(secret()))
    for leaked in (PLANTED, B64, "abc.DEF-123", jwt, "MHcCAQEEIB"):
        assert leaked not in out
    assert out.startswith("curl -H 'Authorization: Bearer ***")


def test_secret_values_include_decoded_data() -> None:
    assert {PLANTED, B64} <= secret_values(secret())


def test_diff_of_secret_change_shows_a_change_but_no_value() -> None:
    other = base64.b64encode(b"another-value").decode()
    out = diff_objects(secret(), secret(other), ref_label="Secret/sre/db")
    assert not _leaks(out) and "another-value" not in out and other not in out
    removed = [line for line in out.splitlines() if line.startswith("-  password")]
    added = [line for line in out.splitlines() if line.startswith("+  password")]
    assert removed and added and removed != [line.replace("+", "-", 1) for line in added]


def test_diff_of_unchanged_secret_is_empty() -> None:
    assert diff_objects(secret(), secret(), ref_label="Secret/sre/db") == ""


def _live(obj: dict[str, Any]) -> dict[str, Any]:
    live: dict[str, Any] = yaml.safe_load(yaml.safe_dump(obj))
    live["metadata"].update(uid="u", resourceVersion="7", generation=3, creationTimestamp="2026-01-01T00:00:00Z",
                            managedFields=[{"manager": "m", "operation": "Apply"}])
    live["status"] = {"readyReplicas": 2}
    return live


def test_diff_ignores_server_fields_and_status() -> None:
    desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "sre"},
               "data": {"a": "1"}}
    assert diff_objects(_live(desired), desired, ref_label="ConfigMap/sre/c") == ""
    with_status = diff_objects(_live(desired), desired, ref_label="ConfigMap/sre/c", include_status=True)
    assert "-status:" in with_status


def test_diff_of_update_create_and_delete() -> None:
    before = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sre"}}
    after = {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "sre", "labels": {"istio-injection": "enabled"}}}
    update = diff_objects(before, after, ref_label="Namespace/sre")
    assert update.startswith("--- a/Namespace/sre\n+++ b/Namespace/sre\n")
    assert "+  labels:\n" in update and "+    istio-injection: enabled\n" in update
    create = diff_objects(None, after, ref_label="Namespace/sre")
    assert create.startswith("--- /dev/null\n+++ b/Namespace/sre\n")
    body = create.splitlines()[3:]
    assert body and all(line.startswith("+") for line in body)
    delete = diff_objects(before, None, ref_label="Namespace/sre")
    assert delete.startswith("--- a/Namespace/sre\n+++ /dev/null\n")


def test_diff_compares_secret_string_data_as_stored_data() -> None:
    desired = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "sre"},
               "stringData": {"password": PLANTED}}
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "sre"},
            "data": {"password": B64}}
    assert diff_objects(live, desired, ref_label="Secret/sre/db") == ""
    rotated = diff_objects(live, {**desired, "stringData": {"password": "rotated"}}, ref_label="Secret/sre/db")
    assert rotated and not _leaks(rotated) and "rotated" not in rotated
