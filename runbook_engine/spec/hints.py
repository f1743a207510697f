"""Fix hints for user-input errors: "did you mean ...?" from the names that do exist."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
