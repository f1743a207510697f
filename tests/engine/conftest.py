"""Fixtures for engine tests: a seeded MemoryCluster, a journal, an engine wired to both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_engine.engine.connect import fixed_connector
from runbook_engine.engine.journal import RunStore
from runbook_engine.engine.runner import Engine
from runbook_engine.kube.memory import MemoryCluster

from .helpers import Recorder, seed_objects


@pytest.fixture
def cluster() -> MemoryCluster:
    return MemoryCluster(seed_objects(), name="lab")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / ".runbook")
    yield s
    s.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(store: RunStore, cluster: MemoryCluster, recorder: Recorder) -> Engine:
    return Engine(store, connect=fixed_connector({"lab": cluster}), sink=recorder)
