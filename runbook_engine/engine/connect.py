"""Connecting to an inventory cluster: kubeconfig + context, in-cluster service account, or a sandbox.

A cluster with ``sandbox: <scenario>`` is started in-process, its state kept under
``<state_dir>/sandbox/<cluster>/`` so a later ``resume`` finds the same objects, and reached
through ``KubeCluster`` over HTTPS with the kubeconfig the sandbox writes: the same client path
as production. The sandbox is stopped when the connection closes.

``fixed_connector`` hands out clusters the caller already built (the planner's snapshot, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from runbook_engine.kube.cluster import Cluster
from runbook_engine.kube.kube_cluster import KubeCluster
from runbook_engine.spec.model import ClusterSpec

#: What the engine connects through: an inventory cluster in, a live ``Cluster`` for the run's duration out.
ClusterConnector = Callable[[ClusterSpec], AbstractContextManager[Cluster]]


@contextmanager
def connect(spec: ClusterSpec, state_dir: Path) -> Iterator[Cluster]:
    """The cluster an inventory entry names, open for the duration of the ``with`` block."""
    if spec.sandbox is not None:
        with _sandbox(spec.name, spec.sandbox, state_dir) as cluster:
            yield cluster
    elif spec.in_cluster:
        yield KubeCluster.in_cluster(spec.name)
    else:
        yield KubeCluster.from_kubeconfig(spec.kubeconfig, spec.context, spec.name)


@contextmanager
def _sandbox(name: str, scenario: Path, state_dir: Path) -> Iterator[Cluster]:
    from runbook_engine.sandbox.app import build_sandbox

    server = build_sandbox(state_dir / "sandbox" / name, scenario, port=0)
    server.start()
    try:
        # A real cluster is found running: let the controllers bring every pod to its steady state
        # (crash-looping ones included) before the run takes its baseline.
        server.settle(timeout=SANDBOX_SETTLE_SECONDS)
        yield KubeCluster.from_kubeconfig(server.kubeconfig, None, name)
    finally:
        server.stop()


SANDBOX_SETTLE_SECONDS = 120.0


class Connector:
    """``ClusterConnector`` for the CLI: real clusters and sandboxes, sandbox state under ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def __call__(self, spec: ClusterSpec) -> AbstractContextManager[Cluster]:
        return connect(spec, self.state_dir)


@contextmanager
def existing_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """A connector result for a cluster object the caller already holds (tests, the planner)."""
    yield cluster


def fixed_connector(clusters: Mapping[str, Cluster]) -> ClusterConnector:
    """A connector that hands out already-built clusters by inventory name."""
    return lambda spec: existing_cluster(clusters[spec.name])
