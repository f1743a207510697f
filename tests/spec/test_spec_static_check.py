"""The static check: what it reports before a run, and what it must not report."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from runbook_engine.errors import UserInputError
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.static_check import check_playbook

from .conftest import CATALOG

INVENTORY = Path(__file__).parent / "cases" / "inventory"


def _check(tmp_path: Path, playbook: str, **options: object) -> list[UserInputError]:
    path = tmp_path / "playbook.yml"
    path.write_text(dedent(playbook))
    spec = load_playbook(path, catalog=CATALOG)
    extra = options.pop("extra_vars", {})
    assert isinstance(extra, dict)
    tags = options.pop("tags", ())
    assert isinstance(tags, tuple)
    return check_playbook(spec, load_inventory(INVENTORY), catalog=CATALOG, extra_vars=extra, tags=tags)


def _messages(errors: list[UserInputError]) -> list[str]:
    return [e.message for e in errors]


ACCEPTED = {
    "guarded by is defined": "when: rollout is defined and rollout.failed",
    "guarded by default": "when: (skip_restart | default(false)) or inventory_hostname == 'eu-1'",
    "chained default": "when: settings.restart.enabled | default(true)",
    "magic and extra vars": "when: cluster == 'eu-1' and run_id != '' and wave | int > 0",
    "inventory var": "when: mesh_namespace == 'istio-system'",
    "jinja globals": "when: (range(3) | list | length) == 3",
}


@pytest.mark.parametrize("condition", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_defined_or_guarded_names_are_accepted(tmp_path: Path, condition: str) -> None:
    playbook = f"""
    - hosts: prod
      phases:
        - name: p
          tasks:
            - rollout_restart: {{name: web, namespace: apps}}
              {condition}
    """
    assert _check(tmp_path, playbook, extra_vars={"wave": "1"}) == []


def test_names_become_defined_in_execution_order(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      vars:
        app_ns: "{{ target }}-apps"
      phases:
        - name: first
          tasks:
            - set_fact: {discovered: apps}
            - rollout_restart: {name: web, namespace: "{{ discovered }}"}
              register: restarted
              until: restarted.changed
              loop: "{{ [app_ns] }}"
              loop_control: {loop_var: ns}
              when: ns != ''
          checkpoint:
            preflight:
              - name: uses a fact set later
                pods_healthy: {namespace: "{{ discovered }}"}
            checks:
              - name: after the tasks
                pods_healthy: {namespace: "{{ discovered }}"}
        - name: second
          tasks:
            - assert: {that: "{{ restarted is changed }}"}
            - pause: {prompt: "{{ item }}"}
    """
    errors = _check(tmp_path, playbook)
    assert _messages(errors) == [
        "undefined variable 'target' in template '{{ target }}-apps'",
        "undefined variable 'discovered' in template '{{ discovered }}'",
        "undefined variable 'item' in template '{{ item }}'",
    ]
    assert [(e.location.line if e.location else 0) for e in errors] == [4, 18, 25]


def test_batch_is_defined_only_in_serial_phases(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      phases:
        - name: batched
          serial: 2
          batch_over: [a, b, c]
          tasks:
            - pause: {prompt: "{{ batch | join(',') }}"}
        - name: not batched
          tasks:
            - pause: {prompt: "{{ batch }}"}
    """
    errors = _check(tmp_path, playbook)
    assert _messages(errors) == ["undefined variable 'batch' in template '{{ batch }}'"]


def test_role_variables_are_visible_only_to_the_role(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "web" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("- pause: {prompt: '{{ greeting }} {{ who }}'}\n")
    (tmp_path / "roles" / "web" / "defaults").mkdir()
    (tmp_path / "roles" / "web" / "defaults" / "main.yml").write_text("greeting: hello\n")
    playbook = """
    - hosts: prod
      phases:
        - name: p
          roles:
            - role: web
              vars: {who: operators}
          tasks:
            - pause: {prompt: "{{ greeting }}"}
    """
    assert _messages(_check(tmp_path, playbook)) == ["undefined variable 'greeting' in template '{{ greeting }}'"]


def test_every_template_in_a_task_is_checked(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      phases:
        - name: p
          when: "{{ a1 }}"
          vars: {v: "{{ a2 }}"}
          tasks:
            - k8s_apply:
                manifest: {metadata: {name: "{{ a3 }}", labels: ["{{ a4 }}"]}}
              loop: "{{ a5 }}"
              changed_when: a6
              failed_when: [a7]
              ignore_errors: "{{ a8 }}"
              vars: {x: "{{ a9 }}"}
    """
    errors = _check(tmp_path, playbook)
    names = sorted(e.message.split("'")[1] for e in errors)
    assert names == [f"a{i}" for i in range(1, 10)]
    assert all(e.location and e.location.line > 0 for e in errors)


def test_unknown_tags_on_the_command_line_are_reported(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      phases:
        - name: p
          tags: [mesh]
          tasks:
            - pause: {}
              tags: [strict]
    """
    assert _check(tmp_path, playbook, tags=("mesh", "strict", "always")) == []
    errors = _check(tmp_path, playbook, tags=("stict",))
    assert _messages(errors) == ["--tags 'stict': no phase, task or check in " + str(tmp_path / "playbook.yml")
                                 + " has this tag"]
    assert "did you mean 'strict'?" in errors[0].hint


def test_limit_narrows_the_hosts(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yml"
    path.write_text("- hosts: eu-1\n  phases: [{name: p, tasks: []}]\n")
    spec = load_playbook(path, catalog=CATALOG)
    errors = check_playbook(spec, load_inventory(INVENTORY), catalog=CATALOG, extra_vars={}, limit="eu-2")
    assert _messages(errors) == [f"hosts pattern 'eu-1' matches no cluster in {INVENTORY} with --limit eu-2"]


def test_a_mistake_in_a_role_used_twice_is_reported_once(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "web" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("- pause: {prompt: '{{ greting }}'}\n")
    playbook = """
    - hosts: prod
      phases:
        - {name: one, roles: [web]}
        - {name: two, roles: [web]}
    """
    errors = _check(tmp_path, playbook)
    assert [(e.location.line if e.location else 0, e.message) for e in errors] == [
        (1, "undefined variable 'greting' in template '{{ greting }}'")
    ]


RUNTIME_ONLY = {
    "a set_fact shadowing a play var": """
            - set_fact: {restart_timeout: 30}
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ restart_timeout }}"}
    """,
    "a registered result": """
            - k8s_label: {kind: Namespace, name: apps, labels: {a: b}}
              register: labelled
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ labelled.timeout }}"}
    """,
    "a loop item": """
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ item }}"}
              loop: [10, 20]
    """,
    "a var whose value uses a fact": """
            - set_fact: {base: 3}
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ derived }}"}
              vars: {derived: "{{ base * 10 }}"}
    """,
    "the run id": """
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ run_id }}"}
    """,
}


@pytest.mark.parametrize("tasks", RUNTIME_ONLY.values(), ids=RUNTIME_ONLY.keys())
def test_arguments_known_only_at_run_time_are_left_to_the_task(tmp_path: Path, tasks: str) -> None:
    playbook = f"""
    - hosts: prod
      vars: {{restart_timeout: soon, base: never}}
      phases:
        - name: p
          tasks:{tasks}
    """
    assert _check(tmp_path, playbook) == []


def test_templated_arguments_render_with_inventory_and_extra_vars_per_cluster(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      phases:
        - name: p
          tasks:
            - rollout_restart: {name: web, namespace: "{{ mesh_namespace }}", timeout: "{{ wait | int * 60 }}"}
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ wait }}"}
    """
    assert _check(tmp_path, playbook, extra_vars={"wave": "1", "wait": 5}) == []
    errors = _check(tmp_path, playbook, extra_vars={"wait": "five"})
    assert _messages(errors) == ["rollout_restart: argument 'timeout': Input should be a valid integer, "
                                 "unable to parse string as an integer"]
    assert errors[0].location is not None and (errors[0].location.line, errors[0].location.column) == (7, 66)
    assert errors[0].hint == "got 'five'"


def test_an_extra_var_fixes_a_value_a_fact_would_otherwise_hide(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      phases:
        - name: p
          tasks:
            - set_fact: {wait: 3}
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ wait }}"}
    """
    assert _messages(_check(tmp_path, playbook, extra_vars={"wait": "later"})) == [
        "rollout_restart: argument 'timeout': Input should be a valid integer, unable to parse string as an integer"
    ]


def _template(tmp_path: Path, text: str) -> None:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "objects.yaml.j2").write_text(dedent(text))


def test_a_template_file_sees_the_names_its_task_sees(tmp_path: Path) -> None:
    _template(tmp_path, """
        {% macro label(n) %}app-{{ n }}{% endmacro %}
        {% for ns in namespaces %}
        {% if ns == mesh_namespace %}{% set kind = 'control' %}{% else %}{% set kind = 'data' %}{% endif %}
        ---
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "{{ label(ns) }}", "labels": {"{{ kind }}": "{{ item }}"}}}
        {% endfor %}
        {{ restarted.changed | default(false) }} {{ optional is defined }}
    """)
    playbook = """
    - hosts: prod
      vars: {namespaces: [apps, web]}
      phases:
        - name: p
          tasks:
            - rollout_restart: {name: web, namespace: apps}
              register: restarted
            - k8s_apply: {template: objects.yaml.j2}
              loop: [1]
    """
    assert _check(tmp_path, playbook) == []


def test_each_undefined_name_in_a_template_file_is_reported_at_its_line(tmp_path: Path) -> None:
    _template(tmp_path, """\
        kind: ConfigMap
        data:
          a: {{ first_missing }}
          b: "{% if mesh_namespace %}{{ second_missing | upper }}{% endif %}"
    """)
    playbook = """
    - hosts: prod
      phases:
        - name: p
          tasks:
            - k8s_apply: {template: objects.yaml.j2}
    """
    errors = _check(tmp_path, playbook)
    assert [(e.message, e.location and (e.location.line, e.location.column)) for e in errors] == [
        ("undefined variable 'first_missing' in template objects.yaml.j2", (3, 6)),
        ("undefined variable 'second_missing' in template objects.yaml.j2", (4, 30)),
    ]
    assert all(e.location and e.location.file == str(tmp_path / "templates" / "objects.yaml.j2") for e in errors)


def test_a_task_known_not_to_run_is_not_judged_by_its_rendered_arguments(tmp_path: Path) -> None:
    playbook = """
    - hosts: prod
      vars: {features: {restart: false, mode: eventually}}
      phases:
        - name: p
          tasks:
            - block:
                - rollout_restart: {name: web, namespace: apps, timeout: "{{ features.restart_timeout }}"}
                - k8s_apply: {template: "{{ features.template }}"}
              when: features.restart
            - rollout_restart: {name: web, namespace: apps, timeout: "{{ features.mode }}"}
              when: features.restart or mesh_namespace == 'istio-system'
    """
    errors = _check(tmp_path, playbook)
    assert [e.message.split(",")[0] for e in errors] == [
        "rollout_restart: argument 'timeout': Input should be a valid integer"
    ]
    assert errors[0].location is not None and errors[0].location.line == 11
