"""Unified diffs of manifests, as an SRE reads them in ``--diff`` output and plans.

Both sides are rendered as YAML (keys sorted, so diffs are stable) after dropping what the API
server fills in (``managedFields``, ``resourceVersion``, ``uid``, ``creationTimestamp``,
``generation``, the last-applied annotation, and ``status`` unless asked) and after masking secrets
with ``redact_object``: a changed Secret value shows as one masked value replaced by another.
Secret ``stringData`` is compared as the ``data`` the server stores it as, so a desired
``stringData`` equal to the live ``data`` is no change.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import yaml

from runbook_engine.kube.merge import SERVER_METADATA, fold_string_data
from runbook_engine.kube.redact import LAST_APPLIED, redact_object

#: libyaml's emitter when installed (the same text as the pure-Python one, several times faster).
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def comparable(obj: Mapping[str, Any], *, include_status: bool = False) -> dict[str, Any]:
    """``obj`` redacted and without server-populated fields: what a diff compares."""
    out = redact_object(fold_string_data(dict(obj)))  # folding edits the top level only; redacting copies
    if not include_status:
        out.pop("status", None)
    meta = {k: v for k, v in (out.get("metadata") or {}).items() if k not in SERVER_METADATA}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def render(obj: Mapping[str, Any] | None, *, include_status: bool = False) -> list[str]:
    """The YAML lines a diff shows for ``obj`` (none for an absent object)."""
    if obj is None:
        return []
    text = yaml.dump(comparable(obj, include_status=include_status), Dumper=_DUMPER, sort_keys=True,
                     default_flow_style=False)
    return text.splitlines(keepends=True)


def diff_objects(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    ref_label: str,
    include_status: bool = False,
    context: int = 3,
) -> str:
    """A unified diff from ``before`` to ``after`` (None means absent); "" when nothing a user set differs."""
    old = render(before, include_status=include_status)
    new = render(after, include_status=include_status)
    if old == new:
        return ""
    lines = difflib.unified_diff(
        old,
        new,
        fromfile=f"a/{ref_label}" if before is not None else "/dev/null",
        tofile=f"b/{ref_label}" if after is not None else "/dev/null",
        n=context,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
