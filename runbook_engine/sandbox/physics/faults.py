"""Mesh faults: what a scenario (or the admin endpoint at run time) can break in the mesh.

Scenario YAML (entries of the scenario's ``faults:`` list; entries of other shapes belong to the
API/controller faults and are ignored here)::

    faults:
      - breaks_when_meshed: {namespace: sre, workload: legacy-worker}   # crash-loops once meshed
      - ztunnel_missing: {node: node-3}        # ambient pods on node-3 lose their node proxy
      - istiod_down: true                      # injection webhook unreachable, no cert renewal
      - spire_agent_missing: {node: node-2}    # pods on node-2 get no SVID from SPIRE

``MeshFaultHandler`` is the fault handler ``build_sandbox`` registers on the server's ``FaultBoard``,
so the same entries are taken from the scenario and from the admin endpoint at run time, listed
with ids and lifted one by one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook_engine.errors import UserInputError
from runbook_engine.sandbox.faults import describe

MESH_FAULT_KEYS = frozenset({"breaks_when_meshed", "ztunnel_missing", "istiod_down", "spire_agent_missing"})


@dataclass
class MeshFaults:
    """The set of active mesh faults; thread-safe so the admin endpoint can add faults live."""

    broken_when_meshed: set[tuple[str, str]] = field(default_factory=set)
    ztunnel_missing: set[str] = field(default_factory=set)
    spire_agent_missing: set[str] = field(default_factory=set)
    istiod_down: bool = False
    version: int = 0  # bumped on every change, so cached evaluations know to look again
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_scenario(cls, entries: Iterable[Mapping[str, Any]]) -> MeshFaults:
        faults = cls()
        for entry in entries:
            if MESH_FAULT_KEYS & set(entry):
                faults.add(entry)
        return faults

    def add(self, entry: Mapping[str, Any]) -> None:
        """Activate one fault given in the scenario shape above."""
        with self._lock:
            for key, value in entry.items():
                self._add_one(str(key), value)
            self.version += 1

    def remove(self, entry: Mapping[str, Any]) -> None:
        """Lift one fault given in the scenario shape (the reverse of ``add``)."""
        with self._lock:
            for key, value in entry.items():
                self._remove_one(str(key), value)
            self.version += 1

    def clear(self) -> None:
        """Lift every mesh fault."""
        with self._lock:
            self.broken_when_meshed.clear()
            self.ztunnel_missing.clear()
            self.spire_agent_missing.clear()
            self.istiod_down = False
            self.version += 1

    def _add_one(self, key: str, value: Any) -> None:
        if key == "istiod_down":
            self.istiod_down = bool(value)
        elif key == "breaks_when_meshed":
            self.broken_when_meshed.add((_field(value, key, "namespace"), _field(value, key, "workload")))
        elif key == "ztunnel_missing":
            self.ztunnel_missing.add(_field(value, key, "node"))
        elif key == "spire_agent_missing":
            self.spire_agent_missing.add(_field(value, key, "node"))
        else:
            raise UserInputError(
                f"unknown mesh fault {key!r}", hint=f"use one of {', '.join(sorted(MESH_FAULT_KEYS))}"
            )

    def _remove_one(self, key: str, value: Any) -> None:
        if key == "istiod_down":
            self.istiod_down = self.istiod_down and not bool(value)
        elif key == "breaks_when_meshed":
            self.broken_when_meshed.discard((_field(value, key, "namespace"), _field(value, key, "workload")))
        elif key == "ztunnel_missing":
            self.ztunnel_missing.discard(_field(value, key, "node"))
        elif key == "spire_agent_missing":
            self.spire_agent_missing.discard(_field(value, key, "node"))

    def breaks(self, namespace: str, workload: str) -> bool:
        return (namespace, workload) in self.broken_when_meshed


def _field(value: Any, key: str, name: str) -> str:
    if not isinstance(value, Mapping) or not value.get(name):
        raise UserInputError(f"mesh fault {key} needs {{{name}: ...}}", hint=f"e.g. {key}: {{{name}: x}}")
    return str(value[name])


class MeshFaultHandler:
    """The ``FaultHandler`` for mesh faults: switches entries on and off in one ``MeshFaults``."""

    shapes = MESH_FAULT_KEYS

    def __init__(self, faults: MeshFaults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._active: dict[str, Mapping[str, Any]] = {}

    def activate(self, fault_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        MeshFaults().add(spec)  # validate first: a malformed entry changes nothing
        with self._lock:
            self._active[fault_id] = dict(spec)
            self.faults.add(spec)
        return describe(fault_id, spec)

    def deactivate(self, fault_id: str) -> bool:
        with self._lock:
            spec = self._active.pop(fault_id, None)
            if spec is None:
                return False
            self.faults.remove(spec)
            for other in self._active.values():  # another active entry may say the same thing
                self.faults.add(other)
            return True

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [describe(fault_id, spec) for fault_id, spec in self._active.items()]
