"""A planned change to one object, as actions return it and the engine journals and executes it.

``before`` is the pre-image (what the object was, ``None`` for a create); ``after`` is the desired
object (``None`` for a delete). The inverse of a change is derived from these two, so rollback needs
nothing but the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runbook_engine.kube.refs import ObjectRef

Obj = dict[str, Any]


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTART = "restart"


@dataclass(frozen=True)
class Change:
    """One object's planned change; ``after`` for create/update is the apply configuration."""

    kind: ChangeKind
    ref: ObjectRef
    before: Obj | None = None
    after: Obj | None = None
    reason: str = ""
    field_manager: str = "runbook-engine"
    meta: dict[str, Any] = field(default_factory=dict)

    def inverse(self) -> Change:
        """The change that undoes this one, given that this one was applied."""
        if self.kind is ChangeKind.CREATE:
            return Change(
                ChangeKind.DELETE, self.ref, before=self.after, after=None, reason=f"undo: {self.reason}"
            )
        if self.kind is ChangeKind.DELETE:
            return Change(
                ChangeKind.CREATE, self.ref, before=None, after=self.before, reason=f"undo: {self.reason}"
            )
        if self.kind is ChangeKind.RESTART:
            # Restarting again re-creates pods from the (restored) template.
            return Change(
                ChangeKind.RESTART,
                self.ref,
                before=self.after,
                after=self.before,
                reason=f"undo: {self.reason}",
            )
        return Change(
            ChangeKind.UPDATE, self.ref, before=self.after, after=self.before, reason=f"undo: {self.reason}"
        )
