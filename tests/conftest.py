"""Fixtures shared by every test area: sandbox API servers on loopback.

- ``sandbox_server``: a fresh server (own state directory, controllers running) per test.
- ``sandbox_kubeconfig``: the kubeconfig path of ``sandbox_server``.
- ``shared_sandbox``: one server for the whole session, for tests that mostly read; tests that
  write to it must use their own namespace and leave other namespaces alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook_engine.sandbox.server import SandboxServer


@pytest.fixture
def sandbox_server(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "sandbox") as server:
        yield server


@pytest.fixture
def sandbox_kubeconfig(sandbox_server: SandboxServer) -> Path:
    return sandbox_server.kubeconfig


@pytest.fixture(scope="session")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path_factory.mktemp("shared-sandbox")) as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the slow end-to-end tests first, so that parallel workers finish together."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
