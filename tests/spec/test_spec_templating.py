"""Templating: Ansible's native values, filters and conditions, located errors, and the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.templating import Templar

HERE = Location("play.yml", 7, 19)

VARS: dict[str, Any] = {
    "namespaces": ["apps", "payments"],
    "replicas": 3,
    "mesh": {"name": "istio", "revision": "1-22"},
    "mesh_namespace": "istio-system",
    "label": "istio.io/rev={{ mesh.revision }}",
    "enabled": "yes",
    "restart": {"changed": True, "failed": False, "stdout": "deployment.apps/web restarted"},
}


@pytest.fixture
def templar() -> Templar:
    return Templar(VARS)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ namespaces }}", ["apps", "payments"]),
        ("{{ replicas }}", 3),
        ("{{ replicas > 2 }}", True),
        ("{{ mesh }}", {"name": "istio", "revision": "1-22"}),
        ("{{ missing | default(None) }}", None),
        ("replicas={{ replicas }}", "replicas=3"),
        ("{{ replicas }}{{ replicas }}", "33"),
        ("{{ label }}", "istio.io/rev=1-22"),
        ("plain text", "plain text"),
    ],
)
def test_a_lone_expression_keeps_its_native_type(templar: Templar, source: str, expected: Any) -> None:
    assert templar.render(source) == expected


def test_render_walks_dicts_and_lists(templar: Templar) -> None:
    value = {"metadata": {"namespace": "{{ mesh_namespace }}", "labels": ["{{ mesh.name }}", 1]}, "n": 2}
    assert templar.render(value) == {"metadata": {"namespace": "istio-system", "labels": ["istio", 1]}, "n": 2}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ enabled | bool }}", True),
        ("{{ 'off' | bool }}", False),
        ("{{ mesh | to_json }}", '{"name": "istio", "revision": "1-22"}'),
        ("{{ mesh | to_yaml }}", "{name: istio, revision: 1-22}\n"),
        ("{{ {'mesh': mesh} | to_nice_yaml(indent=2) }}", "mesh:\n  name: istio\n  revision: 1-22\n"),
        ("{{- replicas -}}", 3),
        ("{{ 'a: [1, 2]' | from_yaml }}", {"a": [1, 2]}),
        ("{{ 'istio' | b64encode }}", "aXN0aW8="),
        ("{{ 'aXN0aW8=' | b64decode }}", "istio"),
        ("{{ 'web-v1' | regex_replace('-v[0-9]+$', '') }}", "web"),
        ("{{ restart.stdout | regex_search('apps/(\\\\w+)', '\\\\1') }}", ["web"]),
        ("{{ mesh | dict2items | map(attribute='key') | list }}", ["name", "revision"]),
        ("{{ [{'key': 'a', 'value': 1}] | items2dict }}", {"a": 1}),
        ("{{ mesh | combine({'revision': '1-23'}) }}", {"name": "istio", "revision": "1-23"}),
        ("{{ {'a': {'x': 1}} | combine({'a': {'y': 2}}, recursive=true) }}", {"a": {"x": 1, "y": 2}}),
        ("{{ replicas | mandatory }}", 3),
        ("{{ (replicas > 1) | ternary('ha', 'single') }}", "ha"),
        ("{{ ['a', 'b', 'a'] | unique | list }}", ["a", "b"]),
        ("{{ [1, [2, [3]]] | flatten }}", [1, 2, 3]),
        ("{{ [{'n': 'a', 'ok': true}, {'n': 'b', 'ok': false}] | selectattr('ok') | map(attribute='n') | list }}",
         ["a"]),
        ("{{ namespaces | difference(['apps']) }}", ["payments"]),
        ("{{ '1.22.3' is version('1.20', '>=') }}", True),
        ("{{ restart is changed and restart is not failed }}", True),
        ("{{ missing is defined }}", False),
        ("{{ mesh.absent.deeper | default('fallback') }}", "fallback"),
    ],
)
def test_ansible_filters_and_tests(templar: Templar, source: str, expected: Any) -> None:
    assert templar.render(source) == expected


def test_render_text_never_returns_a_native_value(templar: Templar) -> None:
    assert templar.render_text("{{ replicas }}") == "3"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (None, True),
        (False, False),
        ("replicas == 3", True),
        ("{{ replicas == 2 }}", False),
        (["replicas > 1", "mesh.name == 'istio'"], True),
        (["replicas > 1", "enabled | bool", False], False),
        ("missing is not defined", True),
    ],
)
def test_conditions_follow_ansible(templar: Templar, condition: Any, expected: bool) -> None:
    assert templar.evaluate(condition, location=HERE) is expected


def test_a_condition_must_give_a_boolean(templar: Templar) -> None:
    with pytest.raises(UserInputError) as caught:
        templar.evaluate("enabled", location=HERE)
    assert "not a boolean" in caught.value.message
    assert "| bool" in caught.value.hint
    assert caught.value.location == HERE


def test_undefined_variable_names_it_and_similar_names(templar: Templar) -> None:
    with pytest.raises(UserInputError) as caught:
        templar.render({"ns": "{{ mesh_namespce }}"}, location=HERE)
    assert str(caught.value).startswith("play.yml:7:19: undefined variable 'mesh_namespce'")
    assert "mesh_namespace" in caught.value.hint


def test_errors_point_at_the_nested_value_when_locations_are_known(templar: Templar) -> None:
    inner = Location("play.yml", 9, 24)
    with pytest.raises(UserInputError) as caught:
        templar.render({"spec": {"ns": "{{ nope }}"}}, location=HERE, locations={"spec.ns": inner})
    assert caught.value.location == inner


def test_a_variable_that_fails_names_the_variable(templar: Templar) -> None:
    bad = Templar({**VARS, "ns": "{{ undefined_thing }}-mesh"})
    with pytest.raises(UserInputError) as caught:
        bad.render("{{ ns }}", location=HERE)
    assert "in variable 'ns'" in caught.value.message
    assert caught.value.location == HERE


def test_self_referencing_variables_are_reported() -> None:
    with pytest.raises(UserInputError, match="refers to itself"):
        Templar({"a": "{{ b }}", "b": "{{ a }}"}).render("{{ a }}")


@pytest.mark.parametrize(
    ("source", "fragment", "hint"),
    [
        ("{{ replicas | uppr }}", "unknown Jinja filter 'uppr'", "upper"),
        ("{{ replicas is evn }}", "unknown Jinja test 'evn'", "even"),
        ("{{ replicas + }}", "template syntax error", "delimiters"),
        ("{{ 'x' | b64decode }}", "failed", "filter arguments"),
        ("{{ replicas | dict2items }}", "dict2items requires a dictionary", ""),
        ("{{ nothing | mandatory }}", "mandatory variable", ""),
    ],
)
def test_template_errors_are_located_with_a_hint(templar: Templar, source: str, fragment: str, hint: str) -> None:
    with pytest.raises(UserInputError) as caught:
        templar.render(source, location=HERE)
    assert caught.value.location == HERE
    assert fragment in caught.value.message
    assert hint in caught.value.hint


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ namespaces.append('kube-system') }}",
        "{{ mesh.update({'name': 'x'}) }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_internals_and_mutation(templar: Templar, source: str) -> None:
    with pytest.raises(UserInputError) as caught:
        templar.render(source, location=HERE)
    assert "unsafe" in caught.value.message or "sandbox" in caught.value.hint
    assert VARS["namespaces"] == ["apps", "payments"]


def test_literal_variables_are_never_templated() -> None:
    injector = {"data": {"config": "image: {{ .Values.global.proxy.image }}"}}
    templar = Templar({"injector": injector, "ns": "{{ 'istio' }}-system"}, literal=["injector"])
    assert templar.render("{{ injector.data.config }}") == "image: {{ .Values.global.proxy.image }}"
    assert templar.render("{{ ns }}") == "istio-system"
    with pytest.raises(UserInputError, match="in variable 'injector'"):
        Templar({"injector": injector}).render("{{ injector }}")


TEXT = "apiVersion: v1\nkind: ConfigMap\ndata:\n  mesh: {{ mesh.name }}\n  mode: {{ mtls_mod }}\n"
TEXT_ERRORS = {
    "undefined": (TEXT, (5, 9), "undefined variable 'mtls_mod' in template cm.yaml.j2"),
    "syntax": ("a: 1\nb: {{ replicas + }}\n", (2, 1), "template cm.yaml.j2: "),
    "runtime": ("a: 1\nb: 2\nc: {{ replicas // 0 }}\n", (3, 1), "template cm.yaml.j2 failed: ZeroDivisionError"),
}


@pytest.mark.parametrize(("text", "position", "message"), TEXT_ERRORS.values(), ids=TEXT_ERRORS.keys())
def test_a_template_file_error_points_inside_the_file_without_quoting_it(
    templar: Templar, text: str, position: tuple[int, int], message: str
) -> None:
    with pytest.raises(UserInputError) as caught:
        templar.render_text(text, location=Location("roles/mtls/templates/cm.yaml.j2", 1, 1))
    error = caught.value
    assert error.location == Location("roles/mtls/templates/cm.yaml.j2", *position)
    assert error.message.startswith(message)
    assert "apiVersion" not in error.message and "a: 1" not in error.message
