"""Fix hints for user-input errors ("did you mean ...?" from the names that do exist) and their reporting."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from runbook_engine.errors import Location, UserInputError


def similar(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """The ``limit`` names closest to ``name`` (difflib ratio >= 0.6), best first."""
    return difflib.get_close_matches(name, sorted(set(candidates)), n=limit, cutoff=0.6)


def did_you_mean(name: str, candidates: Iterable[str], *, fallback: str = "") -> str:
    """``did you mean 'x'?`` (or ``'x' or 'y'``), else ``fallback``."""
    close = similar(name, candidates)
    if not close:
        return fallback
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def one_of(candidates: Iterable[str]) -> str:
    """``one of: a, b, c`` for a hint listing the valid choices."""
    return "one of: " + ", ".join(sorted(set(candidates)))


def unique_errors(errors: Iterable[UserInputError]) -> list[UserInputError]:
    """One report per mistake, in order: a role used by two phases must not report its typo twice."""
    seen: set[tuple[Location | None, str]] = set()
    out: list[UserInputError] = []
    for error in errors:
        key = (error.location, error.message)
        if key not in seen:
            seen.add(key)
            out.append(error)
    return out
