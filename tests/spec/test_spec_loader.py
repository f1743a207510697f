"""Loader behaviour beyond the case files: positions, role search, collected errors, run-time arg checks."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from runbook_engine.errors import Location, UserInputError, UserInputErrors
from runbook_engine.spec.catalog import args_locations, validate_args
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import PlaybookSpec
from runbook_engine.spec.roles import ROLES_PATH_ENV
from runbook_engine.spec.templating import Templar
from runbook_engine.spec.yamlpos import LocatedDict, LocatedList, load_yaml_text

from .conftest import CATALOG, RestartArgs


def _load(tmp_path: Path, text: str) -> PlaybookSpec:
    path = tmp_path / "playbook.yml"
    path.write_text(dedent(text))
    return load_playbook(path, catalog=CATALOG)


def _role(base: Path, name: str, tasks: str) -> None:
    (base / name / "tasks").mkdir(parents=True)
    (base / name / "tasks" / "main.yml").write_text(tasks)


def test_yaml_keeps_key_value_and_item_positions() -> None:
    data = load_yaml_text("a: 1\nlist:\n  - x\n  - {k: v}\n", "f.yml")
    assert isinstance(data, LocatedDict)
    assert data.key_loc("list") == Location("f.yml", 2, 1)
    assert data.value_loc("a") == Location("f.yml", 1, 4)
    items = data["list"]
    assert isinstance(items, LocatedList)
    assert items.item_loc(1) == Location("f.yml", 4, 5)
    assert items[1].value_loc("k") == Location("f.yml", 4, 9)


def test_yaml_merge_keys_may_be_overridden_but_not_duplicated() -> None:
    data = load_yaml_text("base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  a: 3\n", "f.yml")
    assert data["use"] == {"a": 3, "b": 2}


def test_roles_are_found_beside_above_and_on_the_roles_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    play_dir = tmp_path / "playbooks"
    play_dir.mkdir()
    _role(play_dir / "roles", "beside", "- pause: {prompt: beside}\n")
    _role(tmp_path / "roles", "above", "- pause: {prompt: above}\n")
    _role(tmp_path / "shared", "shared", "- pause: {prompt: shared}\n")
    monkeypatch.setenv(ROLES_PATH_ENV, str(tmp_path / "shared"))
    spec = _load(play_dir, "- hosts: prod\n  phases: [{name: p, roles: [beside, above, shared]}]\n")
    tasks = spec.plays[0].phases[0].tasks
    assert [t.args["prompt"] for t in tasks] == ["beside", "above", "shared"]
    assert [t.base_dir for t in tasks] == [play_dir / "roles" / "beside", tmp_path / "roles" / "above",
                                          tmp_path / "shared" / "shared"]
    assert set(spec.roles) == {"beside", "above", "shared"}


def test_all_errors_of_one_pass_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(UserInputErrors) as caught:
        _load(tmp_path, """
        - hosts: prod
          phases:
            - name: p
              tasks:
                - k8s_aply: {}
                - pause: {}
                  regsiter: x
            - name: q
              on_failure: later
        """)
    found = [(e.location.line if e.location else 0, e.message) for e in caught.value.errors]
    assert found == [
        (6, "unknown module 'k8s_aply'"),
        (8, "unknown task keyword 'regsiter'"),
        (10, "on_failure must be one of: pause, rollback, got str 'later'"),
    ]


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ("{name: nothing}", "the task calls no module"),
        ("{block: [], pause: {}}", "both 'block' and module 'pause'"),
        ("{pause: {}, rescue: []}", "'rescue' needs a 'block'"),
        ("{block: [], loop: [1]}", "'loop' does not apply to a block"),
        ("{pause: {}, retries: -1}", "retries must be a whole number >= 0"),
        ("{pause: {}, register: 'not valid'}", "register must be a variable name"),
        ("{pause: {}, loop_control: {label: x}}", "unknown loop_control keyword 'label'"),
        ("{pause: [prompt]}", "pause must be a mapping of arguments"),
        ("{pause: {}, tags: 'two words'}", "tags must be a tag or a list of tags"),
        ("{pause: {}, vars: {'bad-name': 1}}", "'bad-name' is not a valid variable name"),
        ("{include_tasks: missing.yml}", "task file not found"),
    ],
)
def test_task_shape_errors(tmp_path: Path, task: str, fragment: str) -> None:
    with pytest.raises(UserInputError) as caught:
        _load(tmp_path, f"- hosts: prod\n  phases: [{{name: p, tasks: [{task}]}}]\n")
    assert fragment in caught.value.message
    assert caught.value.location is not None and caught.value.location.line == 2


@pytest.mark.parametrize(
    ("play", "fragment"),
    [
        ("- {hosts: prod, phases: [], tasks: []}", "a play with 'phases' cannot also have 'tasks'"),
        ("- {name: x, phases: []}", "a play needs 'hosts'"),
        ("- {hosts: prod}", "a play needs 'phases'"),
        ("- {hosts: prod, phases: [{tasks: []}]}", "a phase needs a name"),
        ("- {hosts: prod, phases: [{name: p, serial: 2}]}", "serial needs batch_over"),
        ("- {hosts: prod, phases: [{name: p, batch_over: [a]}]}", "batch_over needs serial"),
        ("- {hosts: prod, phases: [{name: p, serial: 150%, batch_over: [a]}]}", "serial must be"),
        ("- {hosts: prod, phases: [{name: p, max_fail_percentage: 101}]}", "between 0 and 100"),
        ("- {hosts: prod, phases: [{name: p, checkpoint: {no_data: skip}}]}", "no_data must be one of"),
        ("- {hosts: prod, phases: [{name: p, checkpoint: {checks: [{name: x}]}}]}", "exactly one check module"),
        ("{hosts: prod}", "must be a list"),
        ("[]", "the playbook has no plays"),
    ],
)
def test_play_and_phase_shape_errors(tmp_path: Path, play: str, fragment: str) -> None:
    with pytest.raises(UserInputError) as caught:
        _load(tmp_path, play + "\n")
    assert fragment in caught.value.message


def test_templated_arguments_are_checked_after_rendering_at_their_location(tmp_path: Path) -> None:
    spec = _load(tmp_path, """
    - hosts: prod
      phases:
        - name: p
          tasks:
            - rollout_restart:
                name: web
                namespace: apps
                timeout: "{{ restart_timeout }}"
    """)
    task = spec.plays[0].phases[0].tasks[0]
    rendered = Templar({"restart_timeout": "later"}).render(task.args, location=task.location)
    with pytest.raises(UserInputError) as caught:
        validate_args(RestartArgs, rendered, task.location, module="rollout_restart",
                      locations=args_locations(task.locations))
    assert caught.value.location == Location(str(tmp_path / "playbook.yml"), 9, 22)
    assert "rollout_restart: argument 'timeout'" in caught.value.message
    ok = validate_args(RestartArgs, Templar({"restart_timeout": 60}).render(task.args), task.location)
    assert isinstance(ok, RestartArgs) and ok.timeout == 60


def test_serial_percentage_and_template_are_accepted(tmp_path: Path) -> None:
    spec = _load(tmp_path, """
    - hosts: prod
      phases:
        - {name: a, serial: 25%, batch_over: [x]}
        - {name: b, serial: "{{ wave_size }}", batch_over: "{{ namespaces }}"}
    """)
    assert [p.serial for p in spec.plays[0].phases] == ["25%", "{{ wave_size }}"]


def test_a_bad_task_in_a_role_used_twice_is_reported_once(tmp_path: Path) -> None:
    _role(tmp_path / "roles", "web", "- pause: {}\n  regsiter: x\n")
    with pytest.raises(UserInputError) as caught:
        _load(tmp_path, "- hosts: prod\n  phases: [{name: a, roles: [web]}, {name: b, roles: [web]}]\n")
    assert not isinstance(caught.value, UserInputErrors)
    assert caught.value.message == "unknown task keyword 'regsiter'"


def test_role_files_may_be_named_main_yaml(tmp_path: Path) -> None:
    role = tmp_path / "roles" / "web"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "tasks" / "main.yaml").write_text("- pause: {prompt: '{{ greeting }}'}\n")
    (role / "defaults" / "main.yaml").write_text("greeting: hello\n")
    spec = _load(tmp_path, "- hosts: prod\n  phases: [{name: p, roles: [web]}]\n")
    assert spec.roles["web"].defaults == {"greeting": "hello"}
    assert [t.module for t in spec.plays[0].phases[0].tasks] == ["pause"]
