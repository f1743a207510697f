"""Ansible host patterns over the inventory: which clusters a play's ``hosts:`` selects.

A pattern is terms separated by ``,`` (or ``:`` when it has no comma); a term is a cluster or group name, a shell
wildcard (``eu-*``) or a regular expression (``~eu-[0-9]+``). ``&term`` keeps only clusters also
in that term, ``!term`` removes them. Unions apply first, then intersections, then exclusions, and
the result keeps inventory order (as Ansible does).
"""

from __future__ import annotations

import fnmatch
import re

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.hints import did_you_mean
from runbook_engine.spec.model import InventorySpec


def _term_members(term: str, inventory: InventorySpec) -> set[str]:
    if term in inventory.groups:
        return set(inventory.groups[term])
    if term in inventory.clusters:
        return {term}
    if term.startswith("~"):
        regex = re.compile(term[1:])
        names = [*inventory.clusters, *inventory.groups]
        return {m for n in names if regex.match(n) for m in _term_members(n, inventory)}
    if any(c in term for c in "*?["):
        names = [*inventory.clusters, *inventory.groups]
        return {m for n in names if fnmatch.fnmatchcase(n, term) for m in _term_members(n, inventory)}
    return set()


def _terms(pattern: str) -> list[str]:
    """Split on ``,`` if the pattern has one (so a regex may contain ``:``), else on ``:``, as Ansible does."""
    separator = "," if "," in pattern else ":"
    return [t.strip() for t in pattern.split(separator) if t.strip()]


def match_hosts(pattern: str, inventory: InventorySpec) -> tuple[str, ...]:
    """The clusters ``pattern`` selects, in inventory order (possibly none)."""
    terms = _terms(pattern)
    selected: set[str] = set()
    for term in terms:
        if term[0] not in "&!":
            selected |= _term_members(term, inventory)
    for term in terms:
        if term.startswith("&"):
            selected &= _term_members(term[1:], inventory)
    for term in terms:
        if term.startswith("!"):
            selected -= _term_members(term[1:], inventory)
    return tuple(name for name in inventory.clusters if name in selected)


def select_clusters(
    pattern: str, inventory: InventorySpec, *, location: Location | None = None, limit: str | None = None
) -> tuple[str, ...]:
    """The clusters a play runs on (narrowed by ``--limit``); matching nothing is an error."""
    chosen = match_hosts(pattern, inventory)
    if limit:
        allowed = set(match_hosts(limit, inventory))
        chosen = tuple(c for c in chosen if c in allowed)
    if chosen:
        return chosen
    names = [*inventory.clusters, *inventory.groups]
    unknown = [t.lstrip("&!") for t in _terms(pattern) if not _term_members(t.lstrip("&!"), inventory)]
    hint = did_you_mean(unknown[0], names, fallback="") if unknown else ""
    known = f"clusters and groups: {', '.join(sorted(names))}"
    narrowed = f" with --limit {limit}" if limit else ""
    raise UserInputError(
        f"hosts pattern {pattern!r} matches no cluster in {inventory.path}{narrowed}",
        location,
        hint=f"{hint} {known}" if hint else known,
    )
