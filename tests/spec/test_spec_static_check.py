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
