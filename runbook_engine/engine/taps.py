"""Taps: components that ride along a run by wrapping the engine's connector and standing as its sink.

A tap forwards every event unchanged and, on the events it cares about, acts through the cluster
connection the engine holds for that run — or through a new one when the engine has already
disconnected (the end of a ``rollback``). The automatic reports and the team-store replica are taps:
``Engine(store, connect=tap.connect, sink=tap)``; taps stack by wrapping one another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from runbook_engine.engine.connect import ClusterConnector
from runbook_engine.engine.events import Event, EventSink, discard
from runbook_engine.engine.journal import RunStore
from runbook_engine.kube.cluster import Cluster
from runbook_engine.spec.model import ClusterSpec


class ConnectionTap(ABC):
    """Base of the taps: remembers each run's cluster spec and live connection."""

    def __init__(self, store: RunStore, connect: ClusterConnector, sink: EventSink = discard) -> None:
        self.store = store
        self._connect = connect
        self._sink = sink
        self._specs: dict[str, ClusterSpec] = {}
        self._live: dict[str, Cluster] = {}

    def connect(self, spec: ClusterSpec) -> AbstractContextManager[Cluster]:
        """The engine's connector, wrapped: the tap sees the connection while the engine holds it."""
        return self._connected(spec)

    @contextmanager
    def _connected(self, spec: ClusterSpec) -> Iterator[Cluster]:
        self._specs[spec.name] = spec
        with self._connect(spec) as cluster:
            self._live[spec.name] = cluster
            try:
                yield cluster
            finally:
                self._live.pop(spec.name, None)

    def __call__(self, event: Event) -> None:
        self._sink(event)
        if event.run_id and event.cluster in self._specs and self.wants(event):
            self.on_event(event.run_id, self._specs[event.cluster])

    @contextmanager
    def cluster_for(self, spec: ClusterSpec) -> Iterator[Cluster]:
        """The engine's live connection to ``spec``'s cluster, or a new one if it has disconnected."""
        live = self._live.get(spec.name)
        if live is not None:
            yield live
            return
        with self._connect(spec) as cluster:
            yield cluster

    @abstractmethod
    def wants(self, event: Event) -> bool:
        """Whether this event is one the tap acts on."""

    @abstractmethod
    def on_event(self, run_id: str, spec: ClusterSpec) -> None:
        """Act for ``run_id`` after the event (the journal already holds what the event reports)."""
