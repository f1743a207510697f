"""Resolving what a user wrote in a task or check (a kind, with or without its apiVersion) to a kind.

Shared by actions and checks, which must not import each other.
"""

from __future__ import annotations

from runbook_engine.errors import UserInputError
from runbook_engine.kube.refs import REGISTRY, KindInfo, KindRegistry


def resolve_kind(kind: str, api_version: str | None, registry: KindRegistry = REGISTRY) -> KindInfo:
    """The registered kind; ``api_version`` may be omitted when the kind name is unambiguous."""
    if api_version:
        found = registry.find(api_version, kind)
        if found is None:
            raise UserInputError(
                f"unknown kind {kind} in apiVersion {api_version}",
                hint="check the spelling of kind and api_version, or install the CRD that defines it",
            )
        return found
    matches = [info for info in registry if info.kind == kind]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserInputError(f"unknown kind {kind}", hint="check the spelling, or set api_version for a CRD")
    versions = ", ".join(sorted(i.api_version for i in matches))
    raise UserInputError(f"kind {kind} exists in several API groups ({versions})", hint="set api_version")
