"""Roles in Ansible's layout: finding them, reading their defaults, vars, dependencies and task files.

A role directory holds ``tasks/main.yml`` (or ``main.yaml``, likewise below), ``defaults/main.yml``, ``vars/main.yml``,
``meta/main.yml`` (``dependencies``), ``templates/`` and ``files/``. Roles are searched in
``<playbook dir>/roles``, ``<playbook dir>/../roles`` and each directory of ``RUNBOOK_ROLES_PATH``
(separated by ``os.pathsep``), first match wins. The loader expands a role's tasks into the phase
that lists it; this module only reads the role.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec import fields
from runbook_engine.spec.filters import plain_mapping
from runbook_engine.spec.hints import did_you_mean
from runbook_engine.spec.model import Condition, RoleSpec
from runbook_engine.spec.yamlpos import LocatedList, load_yaml_file

ROLES_PATH_ENV = "RUNBOOK_ROLES_PATH"
ROLE_ENTRY_KEYS = frozenset({"role", "name", "vars", "when", "tags"})


@dataclass(frozen=True)
class RoleRef:
    """One ``roles:`` entry: ``- name`` or ``- role: name`` with ``vars``/``when``/``tags``."""

    name: str
    location: Location
    params: dict[str, Any] = field(default_factory=dict)
    when: Condition = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedRole:
    """A role read from disk: its spec, dependencies and raw ``tasks/main.yml`` (``None`` if absent)."""

    spec: RoleSpec
    dependencies: tuple[RoleRef, ...]
    tasks: LocatedList | None

    @property
    def tasks_dir(self) -> Path:
        return self.spec.path / "tasks"


def role_search_path(playbook_dir: Path) -> tuple[Path, ...]:
    """Where roles are looked for, in order."""
    extra = [Path(p) for p in os.environ.get(ROLES_PATH_ENV, "").split(os.pathsep) if p]
    return (playbook_dir / "roles", playbook_dir.parent / "roles", *extra)


def parse_role_entry(value: Any, location: Location) -> RoleRef:
    """Read one ``roles:`` (or ``dependencies:``) entry."""
    if isinstance(value, str) and value:
        return RoleRef(value, location)
    entry = fields.mapping(value, location, "a roles entry")
    fields.check_keys(entry, ROLE_ENTRY_KEYS, "role entry")
    name = fields.get_str(entry, "role") or fields.get_str(entry, "name")
    if not name:
        raise UserInputError("a roles entry needs 'role: <name>'", location, hint="e.g. - role: istio_install")
    where = entry.value_loc("role" if "role" in entry else "name")
    return RoleRef(name, where, fields.get_vars(entry), fields.get_condition(entry, "when"), fields.get_tags(entry))


def main_file(directory: Path) -> Path | None:
    """``<directory>/main.yml`` or ``main.yaml``, if either exists."""
    for name in ("main.yml", "main.yaml"):
        if (directory / name).is_file():
            return directory / name
    return None


def _optional_mapping(path: Path | None, what: str) -> dict[str, Any]:
    if path is None:
        return {}
    data = load_yaml_file(path, what=what)
    if data is None:
        return {}
    return plain_mapping(fields.mapping(data, Location(str(path), 1, 1), what))


class RoleLibrary:
    """Finds and caches roles by name along the search path."""

    def __init__(self, search_path: tuple[Path, ...]) -> None:
        self.search_path = search_path
        self._loaded: dict[str, LoadedRole] = {}

    def get(self, ref: RoleRef) -> LoadedRole:
        """The role ``ref`` names; an unknown role is an error at the reference."""
        if ref.name not in self._loaded:
            self._loaded[ref.name] = self._load(ref.name, self._find(ref), ref.location)
        return self._loaded[ref.name]

    def specs(self) -> dict[str, RoleSpec]:
        return {name: role.spec for name, role in self._loaded.items()}

    def _available(self) -> list[str]:
        return sorted({p.name for d in self.search_path if d.is_dir() for p in d.iterdir() if p.is_dir()})

    def _find(self, ref: RoleRef) -> Path:
        for directory in self.search_path:
            candidate = directory / ref.name
            if candidate.is_dir():
                return candidate
        searched = ", ".join(str(d) for d in self.search_path)
        raise UserInputError(
            f"unknown role {ref.name!r}",
            ref.location,
            hint=did_you_mean(ref.name, self._available(), fallback=f"roles are searched in {searched}"),
        )

    def _load(self, name: str, path: Path, location: Location) -> LoadedRole:
        tasks_file = main_file(path / "tasks")
        tasks = load_yaml_file(tasks_file, what="role tasks") if tasks_file else None
        if tasks_file and tasks is not None:
            tasks = fields.sequence(tasks, Location(str(tasks_file), 1, 1), f"role {name} {tasks_file.name}")
        dependencies = self._dependencies(main_file(path / "meta"))
        spec = RoleSpec(
            name=name,
            path=path,
            defaults=_optional_mapping(main_file(path / "defaults"), "role defaults"),
            vars=_optional_mapping(main_file(path / "vars"), "role vars"),
            dependencies=tuple(d.name for d in dependencies),
            location=location,
        )
        return LoadedRole(spec, dependencies, tasks)

    def _dependencies(self, meta_file: Path | None) -> tuple[RoleRef, ...]:
        if meta_file is None:
            return ()
        meta = load_yaml_file(meta_file, what="role meta")
        if meta is None:
            return ()
        meta = fields.mapping(meta, Location(str(meta_file), 1, 1), "meta/main.yml")
        deps = meta.get("dependencies")
        if deps is None:
            return ()
        deps = fields.sequence(deps, meta.value_loc("dependencies"), "dependencies")
        return tuple(parse_role_entry(d, deps.item_loc(i)) for i, d in enumerate(deps))

