"""Inventory in Ansible's YAML layout: clusters (hosts), groups, ``group_vars/`` and ``host_vars/``.

``hosts.yml``::

    all:
      vars: {mesh: istio}
      children:
        prod:
          hosts:
            eu-1: {kubeconfig: ~/.kube/prod, context: eu-1}
            lab:  {sandbox: scenarios/lab.yaml}

A cluster is reached by exactly one of ``kubeconfig`` (+ optional ``context``; the kubeconfig's
current context otherwise), ``in_cluster: true`` or ``sandbox`` (a scenario file). Relative paths
resolve from the inventory directory. Each cluster's ``vars`` are merged by Ansible's inventory
precedence (docs/variables.md): group vars written in ``hosts.yml`` (``all`` first, then parents
before children) < ``group_vars/all`` < ``group_vars/<group>`` (parents before children) < host
vars written in ``hosts.yml`` < ``host_vars/<host>``. Connection settings may come from any of these
layers and may be templates (rendered with the cluster's vars and the ``-e`` extra vars).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec import fields
from runbook_engine.spec.filters import plain
from runbook_engine.spec.hints import did_you_mean
from runbook_engine.spec.model import ClusterSpec, InventorySpec
from runbook_engine.spec.templating import Templar, contains_template
from runbook_engine.spec.yamlpos import LocatedDict, load_yaml_file

HOSTS_FILES = ("hosts.yml", "hosts.yaml")
GROUP_KEYS = frozenset({"hosts", "children", "vars"})
CONNECTION_KEYS = ("kubeconfig", "in_cluster", "sandbox")
ALL, UNGROUPED = "all", "ungrouped"


@dataclass
class _Group:
    name: str
    location: Location
    vars: dict[str, Any] = field(default_factory=dict)
    var_locations: dict[str, Location] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: set[str] = field(default_factory=set)


@dataclass
class _Host:
    name: str
    location: Location
    vars: dict[str, Any] = field(default_factory=dict)
    var_locations: dict[str, Location] = field(default_factory=dict)


@dataclass
class _Layered:
    """A cluster's merged variables and where each winning value was written."""

    values: dict[str, Any] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)

    def add(self, values: Mapping[str, Any], locations: Mapping[str, Location], fallback: Location) -> None:
        for key, value in values.items():
            self.values[key] = value
            self.locations[key] = locations.get(key, fallback)


class _Tree:
    """Groups and hosts as written in ``hosts.yml``."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, _Host] = {}

    def group(self, name: str, location: Location) -> _Group:
        return self.groups.setdefault(name, _Group(name, location))

    def read_group(self, name: str, value: Any, location: Location, parent: str | None) -> None:
        group = self.group(name, location)
        if parent is not None:
            group.parents.add(parent)
        if value is None:
            return
        body = fields.mapping(value, location, f"group {name!r}")
        fields.check_keys(body, GROUP_KEYS, "inventory group")
        group.vars.update(fields.get_vars(body))
        group.var_locations.update(_value_locations(body.get("vars")))
        self._read_hosts(group, body)
        children = body.get("children")
        if children is not None:
            kids = fields.mapping(children, body.value_loc("children"), "children")
            for child, child_value in kids.items():
                if str(child) not in group.children:
                    group.children.append(str(child))
                self.read_group(str(child), child_value, kids.key_loc(child), name)

    def _read_hosts(self, group: _Group, body: LocatedDict) -> None:
        if body.get("hosts") is None:
            return
        hosts = fields.mapping(body["hosts"], body.value_loc("hosts"), "hosts")
        for host_name, host_value in hosts.items():
            name = str(host_name)
            host = self.hosts.setdefault(name, _Host(name, hosts.key_loc(host_name)))
            if name not in group.hosts:
                group.hosts.append(name)
            if host_value is not None:
                entry = fields.mapping(host_value, hosts.value_loc(host_name), f"cluster {name!r}")
                host.vars.update(fields.variables(entry, entry.location, f"cluster {name!r}"))
                host.var_locations.update(_value_locations(entry))


def _value_locations(value: Any) -> dict[str, Location]:
    if not isinstance(value, LocatedDict):
        return {}
    return {str(k): value.value_loc(k) for k in value}


def _resolve_paths(path: Path) -> tuple[Path, Path]:
    """(inventory dir, hosts file) for a directory or a hosts file path."""
    if path.is_dir():
        for name in HOSTS_FILES:
            if (path / name).is_file():
                return path, path / name
        raise UserInputError(
            f"inventory {path} has no hosts.yml", Location(str(path)), hint="create hosts.yml with an 'all:' group"
        )
    if not path.exists():
        raise UserInputError(
            f"inventory not found: {path}", Location(str(path)), hint="pass -i <inventory dir or hosts.yml>"
        )
    return path.parent, path


def _read_tree(hosts_file: Path) -> _Tree:
    data = load_yaml_file(hosts_file, what="inventory")
    top = fields.mapping(data, Location(str(hosts_file), 1, 1), "an inventory (groups at the top level)")
    tree = _Tree()
    tree.group(ALL, top.location)
    for name, value in top.items():
        tree.read_group(str(name), value, top.key_loc(name), None if name == ALL else ALL)
    if not tree.hosts:
        raise UserInputError("the inventory defines no clusters", top.location, hint="add all: {hosts: {name: {...}}}")
    _finish_groups(tree)
    return tree


def _finish_groups(tree: _Tree) -> None:
    all_group = tree.groups[ALL]
    for name, group in tree.groups.items():
        if name != ALL and not group.parents:
            group.parents.add(ALL)
        for parent in group.parents:
            if name not in tree.groups[parent].children:
                tree.groups[parent].children.append(name)
    grouped = {h for name, g in tree.groups.items() if name != ALL for h in g.hosts}
    ungrouped = [h for h in tree.hosts if h not in grouped]
    if ungrouped:
        tree.group(UNGROUPED, all_group.location).hosts.extend(ungrouped)
        tree.groups[UNGROUPED].parents.add(ALL)
    for name in tree.groups:
        _depth(tree, name, ())


def _depth(tree: _Tree, name: str, chain: tuple[str, ...]) -> int:
    """Distance from ``all`` (longest path); a group that is its own ancestor is an error."""
    if name in chain:
        cycle = " -> ".join([*chain[chain.index(name) :], name])
        raise UserInputError(f"inventory group cycle: {cycle}", tree.groups[name].location, hint="remove a child")
    parents = tree.groups[name].parents - {name}
    if name == ALL or not parents:
        return 0
    return 1 + max(_depth(tree, p, (*chain, name)) for p in parents)


def _groups_of(tree: _Tree, host: str) -> list[str]:
    """Every group containing ``host`` directly or through children, ordered all → parents → children."""
    direct = [name for name, g in tree.groups.items() if host in g.hosts]
    found: set[str] = {ALL}
    pending = list(direct)
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(tree.groups[name].parents)
    return sorted(found, key=lambda g: (_depth(tree, g, ()), g))


def _vars_dir_file(base: Path, name: str) -> list[Path]:
    """``<base>/<name>.yml|.yaml`` and ``<base>/<name>/*.yml|*.yaml`` (sorted)."""
    files = [base / f"{name}{ext}" for ext in (".yml", ".yaml") if (base / f"{name}{ext}").is_file()]
    if (base / name).is_dir():
        files.extend(sorted(p for p in (base / name).iterdir() if p.suffix in (".yml", ".yaml")))
    return files


def _load_vars_files(base: Path, name: str) -> tuple[dict[str, Any], dict[str, Location]]:
    values: dict[str, Any] = {}
    locations: dict[str, Location] = {}
    for path in _vars_dir_file(base, name):
        data = load_yaml_file(path, what="vars file")
        if data is None:
            continue
        values.update(fields.variables(data, Location(str(path), 1, 1), f"vars file {path.name}"))
        locations.update(_value_locations(data))
    return values, locations


def _check_vars_dirs(directory: Path, tree: _Tree) -> None:
    """A ``group_vars``/``host_vars`` entry naming no group/cluster is a typo, not something to ignore."""
    for sub, known, what in (("group_vars", tree.groups, "group"), ("host_vars", tree.hosts, "cluster")):
        base = directory / sub
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            name = entry.stem if entry.is_file() else entry.name
            if entry.is_file() and entry.suffix not in (".yml", ".yaml"):
                continue
            if name not in known:
                raise UserInputError(
                    f"{sub}/{entry.name} names no {what} in the inventory",
                    Location(str(entry)),
                    hint=did_you_mean(name, known, fallback=f"{what}s: {', '.join(sorted(known))}"),
                )


def _layered_vars(directory: Path, tree: _Tree, host: _Host) -> _Layered:
    layered = _Layered()
    groups = _groups_of(tree, host.name)
    for name in groups:
        group = tree.groups[name]
        layered.add(group.vars, group.var_locations, group.location)
    for name in groups:
        values, locations = _load_vars_files(directory / "group_vars", name)
        layered.add(values, locations, Location(str(directory / "group_vars" / name)))
    layered.add(host.vars, host.var_locations, host.location)
    values, locations = _load_vars_files(directory / "host_vars", host.name)
    layered.add(values, locations, Location(str(directory / "host_vars" / host.name)))
    return layered


class _ClusterBuilder:
    """Turns a host's merged vars into a ``ClusterSpec``, validating its connection settings."""

    def __init__(self, directory: Path, host: _Host, layered: _Layered, extra_vars: Mapping[str, Any]) -> None:
        self.directory = directory
        self.host = host
        self.layered = layered
        self.templar = Templar({**layered.values, "inventory_hostname": host.name, **extra_vars})

    def where(self, key: str) -> Location:
        return self.layered.locations.get(key, self.host.location)

    def value(self, key: str) -> Any:
        raw = self.layered.values.get(key)
        return self.templar.render(raw, location=self.where(key)) if contains_template(raw) else raw

    def text(self, key: str) -> str | None:
        value = self.value(key)
        if value is None or (isinstance(value, str) and value):
            return value
        raise UserInputError(f"{key} must be a non-empty string, got {value!r}", self.where(key))

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.directory / path

    def connection(self) -> None:
        in_cluster = self.value("in_cluster")
        if in_cluster is not None and not isinstance(in_cluster, bool):
            raise UserInputError(f"in_cluster must be true or false, got {in_cluster!r}", self.where("in_cluster"))
        chosen = [k for k in CONNECTION_KEYS if self.value(k) not in (None, False)]
        name = self.host.name
        if not chosen:
            raise UserInputError(
                f"cluster {name!r} has no connection", self.host.location,
                hint="set exactly one of kubeconfig: <path> (+ context), in_cluster: true, sandbox: <scenario>",
            )  # fmt: skip
        if len(chosen) > 1:
            first, second = chosen[0], chosen[1]
            raise UserInputError(
                f"cluster {name!r} sets both {first} (at {self.where(first)}) and {second}", self.where(second),
                hint="a cluster is reached one way: keep one of kubeconfig, in_cluster, sandbox",
            )  # fmt: skip
        if self.value("context") is not None and chosen[0] != "kubeconfig":
            raise UserInputError(
                f"cluster {name!r}: context applies only with kubeconfig", self.where("context"),
                hint="remove context, or reach the cluster through a kubeconfig",
            )  # fmt: skip

    def sandbox(self) -> Path | None:
        path = self.path("sandbox")
        if path is not None and not path.is_file():
            raise UserInputError(
                f"sandbox scenario not found: {path}", self.where("sandbox"),
                hint="the path is relative to the inventory directory",
            )  # fmt: skip
        return path

    def build(self, groups: list[str]) -> ClusterSpec:
        self.connection()
        url = self.text("prometheus_url")
        if url is not None and not url.startswith(("http://", "https://")):
            raise UserInputError(f"prometheus_url must be an http(s) URL, got {url!r}", self.where("prometheus_url"))
        return ClusterSpec(
            name=self.host.name,
            kubeconfig=self.path("kubeconfig"),
            context=self.text("context"),
            in_cluster=bool(self.value("in_cluster")),
            sandbox=self.sandbox(),
            prometheus_url=url,
            groups=tuple(g for g in groups if g != ALL),
            vars=plain(self.layered.values),
            location=self.host.location,
        )


def _members(tree: _Tree, name: str) -> tuple[str, ...]:
    """Every cluster in group ``name``, through its children, in inventory order."""
    found: set[str] = set()
    pending = [name]
    while pending:
        group = tree.groups[pending.pop()]
        found.update(group.hosts)
        pending.extend(group.children)
    return tuple(h for h in tree.hosts if h in found)


def load_inventory(path: Path, *, extra_vars: Mapping[str, Any] | None = None) -> InventorySpec:
    """Load an inventory directory (or its hosts file), merging each cluster's vars by precedence."""
    directory, hosts_file = _resolve_paths(Path(path))
    tree = _read_tree(hosts_file)
    _check_vars_dirs(directory, tree)
    clusters: dict[str, ClusterSpec] = {}
    for name, host in tree.hosts.items():
        layered = _layered_vars(directory, tree, host)
        clusters[name] = _ClusterBuilder(directory, host, layered, extra_vars or {}).build(_groups_of(tree, name))
    groups = {name: _members(tree, name) for name in tree.groups}
    return InventorySpec(path=directory, clusters=clusters, groups=groups)
