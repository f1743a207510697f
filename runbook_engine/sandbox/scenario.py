"""Sandbox scenarios: a platform to emulate, as YAML — nodes, plain manifests, traffic flows, faults.

::

    name: demo
    nodes:
      - {name: node-1, labels: {topology.kubernetes.io/zone: eu-1a}}
    include: [scenario/sre.yaml]        # multi-document manifest files, relative to this file
    manifests: [{apiVersion: v1, kind: Namespace, metadata: {name: sre}}]
    flows:
      - {from: sre/portal, to: sre/api:8080, protocol: http}
    faults:
      - crashloop: {namespace: sre, workload: report-worker}

Every mistake is reported with the file, line and column it is at (from the YAML node marks) and a
hint; all mistakes found in one pass are reported together and nothing is seeded. A scenario is read
fast first (JSON — what ``runbook sandbox generate`` writes, and a subset of YAML — or YAML without
keeping its node tree); only when something is wrong is it read again with positions, to say where.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runbook_engine.errors import ConflictError, Location, UserInputError, UserInputErrors
from runbook_engine.kube.flow import Flow
from runbook_engine.kube.refs import KindRegistry, default_registry
from runbook_engine.sandbox.controllers.crashloop import CrashLoop, is_crashloop
from runbook_engine.sandbox.controllers.util import gc_paused
from runbook_engine.sandbox.store import Obj, Store, crd_kinds

TOP_LEVEL_KEYS = ("name", "description", "nodes", "include", "manifests", "flows", "faults")
NODE_KEYS = ("name", "labels", "unschedulable")
KUBERNETES_VERSION = "v1.32.0"

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PathPart = str | int
_FLOW_HINT = "a flow is {from: <ns>/<workload>, to: <ns>/<service>:<port>, protocol: http|grpc|tcp|server-first}"


@dataclass(frozen=True)
class NodeSpec:
    """One node of the emulated cluster."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: bool = False

    def manifest(self, ordinal: int) -> Obj:
        """The Node object, with the status a kubelet reports (Ready, addresses, capacity, versions)."""
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.labels,
        }
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {"podCIDR": f"10.244.{ordinal}.0/24", **({"unschedulable": True} if self.unschedulable else {})},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status"},
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                    {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                    {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
                ],
                "addresses": [
                    {"type": "InternalIP", "address": f"10.0.{ordinal // 250}.{ordinal % 250 + 4}"},
                    {"type": "Hostname", "address": self.name},
                ],
                "capacity": capacity,
                "allocatable": {**capacity, "cpu": "7800m", "memory": "30Gi"},
                "nodeInfo": {
                    "kubeletVersion": KUBERNETES_VERSION,
                    "kubeProxyVersion": KUBERNETES_VERSION,
                    "containerRuntimeVersion": "containerd://1.7.22",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "Ubuntu 22.04.5 LTS",
                    "kernelVersion": "6.8.0-1015-gcp",
                },
            },
        }


@dataclass
class Scenario:
    """A loaded, validated scenario."""

    name: str
    path: Path
    nodes: list[NodeSpec] = field(default_factory=list)
    manifests: list[Obj] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    def seed(self, store: Store) -> None:
        """Create the nodes, namespaces and manifests in a store; objects that already exist are kept."""
        for ordinal, node in enumerate(self.nodes):
            _create(store, node.manifest(ordinal))
        for obj in sorted(self.objects(), key=_seed_order):
            _create(store, obj)

    def objects(self) -> list[Obj]:
        """The manifests plus a Namespace for every namespace they use but do not declare."""
        declared = {m["metadata"]["name"] for m in self.manifests if m["kind"] == "Namespace"}
        used = {str(m["metadata"]["namespace"]) for m in self.manifests if m["metadata"].get("namespace")}
        implicit = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in sorted(used - declared)
        ]
        return implicit + self.manifests


_SEED_ORDER = {"Namespace": 0, "CustomResourceDefinition": 1, "ServiceAccount": 2, "ConfigMap": 2, "Secret": 2}


def _seed_order(obj: Obj) -> int:
    return _SEED_ORDER.get(str(obj.get("kind")), 3)


def _create(store: Store, obj: Obj) -> None:
    try:
        store.create(obj, copy_result=False)
    except ConflictError:
        return


# -- loading -------------------------------------------------------------------------------------------
def load_scenario(path: Path) -> Scenario:
    """Load and validate a scenario file; raises ``UserInputError`` (file:line:column + hint) on mistakes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"cannot read scenario: {exc.strerror}", Location(str(path)),
                             hint="check the path given to --scenario") from exc
    return parse_scenario(text, path)


def parse_scenario(text: str, path: Path) -> Scenario:
    """Validate scenario text read from ``path`` (includes are resolved relative to it)."""
    with gc_paused():
        try:
            return _parse(text, path, positions=False)
        except UserInputError:
            return _parse(text, path, positions=True)  # again, to say where each mistake is


def _parse(text: str, path: Path, *, positions: bool) -> Scenario:
    docs = _documents(text, str(path), positions=positions)
    if len(docs) != 1 or not isinstance(docs[0].data, dict):
        where = docs[0].location(()) if docs else Location(str(path), 1, 1)
        raise UserInputError("a scenario is one YAML mapping", where, hint="start with `name: <scenario name>`")
    builder = _Builder(path, docs[0], positions=positions)
    scenario = builder.build()
    if builder.errors:
        raise builder.errors[0] if len(builder.errors) == 1 else UserInputErrors(builder.errors)
    return scenario


@dataclass(frozen=True)
class _Doc:
    """One YAML document: the constructed data and its node tree, to find where anything is."""

    file: str
    node: yaml.Node | None  # None when read without positions
    data: Any

    def location(self, path: tuple[PathPart, ...], *, key: bool = False) -> Location:
        """Where ``path`` is (its key with ``key=True``); the closest existing parent if it is missing."""
        if self.node is None:
            return Location(self.file)
        node: yaml.Node = self.node
        for i, part in enumerate(path):
            child = _child(node, part, key=key and i == len(path) - 1)
            if child is None:
                break
            node = child
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)


def _child(node: yaml.Node, part: PathPart, *, key: bool) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == part:
                found: yaml.Node = k if key else v
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


def _documents(text: str, file: str, *, positions: bool = True) -> list[_Doc]:
    """The documents of a YAML (or JSON) text; with ``positions``, each keeps its node tree."""
    if not positions:
        fast = _fast_documents(text, file)
        if fast is not None:
            return fast
    loader = _Loader(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            docs.append(_Doc(file, node, _plain(loader.construct_document(node))))
        return [d for d in docs if d.data is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # an unterminated construct: point at where it starts
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = ", ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        hint = "check indentation, quoting and that every `key: value` has a space after `:`"
        raise UserInputError(f"YAML syntax error: {problem}", where, hint=hint) from exc
    finally:
        loader.dispose()


def _fast_documents(text: str, file: str) -> list[_Doc] | None:
    """The documents without positions (None when the text does not parse: the slow path says why)."""
    try:
        if text.lstrip().startswith("{"):
            try:
                return [_Doc(file, None, json.loads(text))]
            except ValueError:
                pass  # YAML in flow style, perhaps
        docs = [_Doc(file, None, _plain(data)) for data in yaml.load_all(text, Loader=_Loader)]
    except yaml.YAMLError:
        return None
    return [d for d in docs if d.data is not None]


def _plain(value: Any) -> Any:
    """Timestamps stay strings, as the Kubernetes API reads YAML (it goes through JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat().replace("+00:00", "Z")
    return value


class _Builder:
    """Walks a scenario document, collecting every mistake with its location."""

    def __init__(self, path: Path, doc: _Doc, *, positions: bool = True) -> None:
        self.path = path
        self.doc = doc
        self.positions = positions
        self.errors: list[UserInputError] = []
        self.registry: KindRegistry = default_registry()

    def error(self, message: str, where: Location, hint: str) -> None:
        self.errors.append(UserInputError(message, where, hint=hint))

    def build(self) -> Scenario:
        data: dict[str, Any] = self.doc.data
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                where = self.doc.location((key,), key=True)
                self.error(f"unknown scenario key {key!r}", where, _did_you_mean(key, TOP_LEVEL_KEYS))
        manifests = [*self._inline_manifests(), *self._included_manifests()]
        self._check_kinds(manifests)
        return Scenario(
            name=str(data.get("name") or self.path.stem),
            path=self.path,
            nodes=self._nodes(),
            manifests=[m for m, _ in manifests],
            flows=self._flows(),
            faults=self._faults(),
            description=str(data.get("description") or ""),
        )

    def _list(self, key: str) -> Iterator[tuple[int, Any]]:
        value = self.doc.data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.error(f"{key} must be a list", self.doc.location((key,)), f"write `{key}:` followed by `- ` items")
            return
        yield from enumerate(value)

    def _nodes(self) -> list[NodeSpec]:
        nodes = []
        for i, item in self._list("nodes"):
            where = self.doc.location(("nodes", i))
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                self.error("a node needs a name", where, "e.g. `- {name: node-1, labels: {zone: a}}`")
                continue
            for key in item:
                if key not in NODE_KEYS:
                    self.error(f"unknown node key {key!r}", self.doc.location(("nodes", i, key), key=True),
                               _did_you_mean(key, NODE_KEYS))
            labels = item.get("labels") or {}
            if not isinstance(labels, dict):
                self.error("node labels must be a mapping", self.doc.location(("nodes", i, "labels")),
                           "e.g. `labels: {topology.kubernetes.io/zone: eu-1a}`")
                labels = {}
            nodes.append(NodeSpec(item["name"], {str(k): str(v) for k, v in labels.items()},
                                  bool(item.get("unschedulable", False))))
        return nodes

    def _inline_manifests(self) -> list[tuple[Obj, Location]]:
        out = []
        for i, item in self._list("manifests"):
            where = self.doc.location(("manifests", i))
            if self._valid_manifest(item, where):
                out.append((item, where))
        return out

    def _included_manifests(self) -> list[tuple[Obj, Location]]:
        out: list[tuple[Obj, Location]] = []
        for i, item in self._list("include"):
            where = self.doc.location(("include", i))
            target = self.path.parent / str(item)
            if not isinstance(item, str) or not target.is_file():
                self.error(f"included manifest file {item!r} not found", where,
                           f"paths are relative to {self.path.parent or '.'}")
                continue
            try:
                docs = _documents(target.read_text(encoding="utf-8"), str(target), positions=self.positions)
            except UserInputError as exc:
                self.errors.append(exc)
                continue
            for doc in docs:
                here = doc.location(())
                for obj in _flatten(doc.data):
                    if self._valid_manifest(obj, here):
                        out.append((obj, here))
        return out

    def _valid_manifest(self, obj: Any, where: Location) -> bool:
        if not isinstance(obj, dict):
            self.error("a manifest must be a mapping", where, "each item is an object: apiVersion, kind, metadata")
            return False
        missing = [k for k in ("apiVersion", "kind") if not obj.get(k)]
        name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
        if missing or not name:
            what = ", ".join(missing + ([] if name else ["metadata.name"]))
            self.error(f"manifest is missing {what}", where, "every object needs apiVersion, kind and metadata.name")
            return False
        return True

    def _check_kinds(self, manifests: list[tuple[Obj, Location]]) -> None:
        for obj, _ in manifests:
            if (obj["apiVersion"], obj["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
                for info in crd_kinds(obj):
                    self.registry.register(info)
        seen: dict[tuple[str, str, str], Location] = {}
        for obj, where in manifests:
            identity = (str(obj["kind"]), str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"]))
            if identity in seen:
                self.error(f"{identity[0]} {'/'.join(p for p in identity[1:] if p)} is declared twice", where,
                           f"the first declaration is at {seen[identity]}; keep one")
            seen.setdefault(identity, where)
            if self.registry.find(obj["apiVersion"], obj["kind"]) is None:
                known = sorted({info.kind for info in self.registry})
                self.error(f"unknown kind {obj['apiVersion']}/{obj['kind']}", where,
                           _did_you_mean(obj["kind"], known) + " (or add its CustomResourceDefinition to the scenario)")

    def _flows(self) -> list[Flow]:
        flows = []
        for i, item in self._list("flows"):
            try:
                flows.append(Flow.model_validate(item))
            except ValidationError as exc:
                first = exc.errors()[0]
                field_name = str(first["loc"][0]) if first["loc"] else ""
                path: tuple[PathPart, ...] = ("flows", i, field_name) if field_name else ("flows", i)
                where = self.doc.location(path, key=first["type"] == "extra_forbidden")
                self.error(f"invalid flow: {field_name + ': ' if field_name else ''}{first['msg']}", where, _FLOW_HINT)
        return flows

    def _faults(self) -> list[dict[str, Any]]:
        faults = []
        for i, item in self._list("faults"):
            where = self.doc.location(("faults", i))
            if not isinstance(item, dict) or len(item) != 1:
                self.error("a fault is a mapping with one key: its type", where,
                           "e.g. `- crashloop: {namespace: sre, workload: report-worker}`")
                continue
            if is_crashloop(item):
                try:
                    CrashLoop.from_spec(item)
                except ValueError as exc:
                    self.error(str(exc), where, "crashloop takes namespace, workload, container, exitCode and log")
            faults.append(item)
        return faults


def _flatten(data: Any) -> list[Any]:
    """A document's objects; a ``kind: List`` (what ``kubectl get -o yaml`` writes) holds several."""
    if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
        return list(data["items"])
    return [data]


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"known: {', '.join(choices)}" if len(choices) <= 10 else "check the spelling"
