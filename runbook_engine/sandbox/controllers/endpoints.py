"""The Endpoints controller: each Service with a selector gets an ``Endpoints`` of its pods.

Ready pods go to ``addresses``, the others to ``notReadyAddresses`` (with ``nodeName`` and a
``targetRef``); ports are the Service's ports with ``targetPort`` resolved against each pod's
named container ports, so pods that name a port differently land in separate subsets.
"""

from __future__ import annotations

import contextlib
from typing import Any

from runbook_engine.errors import ConflictError, NotFoundError
from runbook_engine.sandbox.controllers.context import Context
from runbook_engine.sandbox.controllers.util import (
    ENDPOINTS,
    Wake,
    pod_active,
    pod_ready,
)
from runbook_engine.sandbox.store import Key, Obj


class EndpointsController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        _, _, namespace, name = key
        service = self.ctx.get(key)
        current = self.ctx.get((*ENDPOINTS, namespace, name))
        selector = ((service or {}).get("spec") or {}).get("selector")
        if service is None:
            if current is not None:
                with contextlib.suppress(NotFoundError):
                    self.ctx.store.delete(*ENDPOINTS, namespace, name)
            return None
        if not selector:
            return None  # a Service without a selector: its Endpoints are the user's to manage
        subsets = self._subsets(service, self._pods(namespace, selector))
        if current is None:
            with contextlib.suppress(ConflictError):
                self.ctx.store.create(_endpoints(service, subsets), copy_result=False)
        elif (current.get("subsets") or []) != subsets:
            current["subsets"] = subsets
            if not subsets:
                current.pop("subsets")
            self.ctx.store.update(current, expect_rv=str(current["metadata"]["resourceVersion"]), copy_result=False)
        return None

    def _pods(self, namespace: str, selector: dict[str, str]) -> list[Obj]:
        out = []
        for key in self.ctx.index.pods_matching(namespace, {str(k): str(v) for k, v in selector.items()}):
            pod = self.ctx.get(key)
            if pod is not None and pod_active(pod) and (pod.get("status") or {}).get("podIP"):
                out.append(pod)
        return out

    def _subsets(self, service: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for pod in sorted(pods, key=lambda p: str(p["status"]["podIP"])):
            ports = [_resolve(port, pod) for port in (service.get("spec") or {}).get("ports") or []]
            group = groups.setdefault(repr(ports), {"ports": ports})
            bucket = "addresses" if pod_ready(pod) else "notReadyAddresses"
            group.setdefault(bucket, []).append(_address(pod))
        return [{k: g[k] for k in ("addresses", "notReadyAddresses", "ports") if k in g} for g in groups.values()]


def _resolve(port: dict[str, Any], pod: Obj) -> dict[str, Any]:
    target = port.get("targetPort", port.get("port"))
    number = target
    if isinstance(target, str) and not target.isdigit():
        named = (
            cp.get("containerPort")
            for c in (pod.get("spec") or {}).get("containers") or []
            for cp in c.get("ports") or []
            if cp.get("name") == target
        )
        number = next(named, None)
    out: dict[str, Any] = {"port": int(number) if number is not None else 0, "protocol": port.get("protocol", "TCP")}
    if port.get("name"):
        out["name"] = port["name"]
    if port.get("appProtocol"):
        out["appProtocol"] = port["appProtocol"]
    return out


def _address(pod: Obj) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "ip": pod["status"]["podIP"],
        "nodeName": pod["spec"].get("nodeName", ""),
        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid", "")},
    }


def _endpoints(service: Obj, subsets: list[dict[str, Any]]) -> Obj:
    meta = service["metadata"]
    out: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta.get("labels") or {})},
    }
    if subsets:
        out["subsets"] = subsets
    return out
