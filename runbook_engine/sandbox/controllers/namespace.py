"""The namespace controllers: every namespace is ``Active`` and has a ``default`` ServiceAccount."""

from __future__ import annotations

import contextlib

from runbook_engine.errors import ConflictError
from runbook_engine.sandbox.controllers.context import Context
from runbook_engine.sandbox.controllers.util import SERVICE_ACCOUNT, Wake, write_status
from runbook_engine.sandbox.store import Key


class NamespaceController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, key: Key) -> Wake | None:
        ns = self.ctx.get(key)
        if ns is None:
            return None
        name = key[3]
        if (ns.get("status") or {}).get("phase") != "Active" and not ns["metadata"].get("deletionTimestamp"):
            write_status(self.ctx.store, ns, {**(ns.get("status") or {}), "phase": "Active"})
        if self.ctx.get((*SERVICE_ACCOUNT, name, "default")) is None:
            account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}}
            with contextlib.suppress(ConflictError):
                self.ctx.store.create(account, copy_result=False)
        return None
