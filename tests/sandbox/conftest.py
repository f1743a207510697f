"""Fixtures for the sandbox API tests: clients of a fresh server, and a kubectl runner."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import Kubectl
from kubernetes import client, config, dynamic

from runbook_engine.sandbox.server import SandboxServer


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[SandboxServer]:
    """A fresh server without workload controllers: the API alone, so nothing writes but the test."""
    with SandboxServer(tmp_path / "api-sandbox", controllers=False) as server:
        yield server


@pytest.fixture
def api(api_server: SandboxServer) -> Iterator[client.ApiClient]:
    """An ``ApiClient`` configured from the server's kubeconfig, exactly as a user would."""
    api_client = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def dyn(api: client.ApiClient) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api)


@pytest.fixture
def kubectl(sandbox_server: SandboxServer, tmp_path: Path) -> Kubectl:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH; the kubectl tests need it")
    return Kubectl(sandbox_server.kubeconfig, tmp_path / "kube-cache")
