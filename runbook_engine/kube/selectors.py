"""Kubernetes label selectors: the string form (``a=b,c!=d,e in (x,y),!f``) and the object form
(``matchLabels`` / ``matchExpressions``), parsed into one ``Selector`` that matches label maps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runbook_engine.errors import UserInputError


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects that lack the key, as the API server does.
        return not present or value not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_term(term: str) -> Requirement:
    if m := _SET_RE.match(term):
        values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
        return Requirement(m.group(1), m.group(2), values)
    for op in ("!=", "==", "="):
        if op in term:
            key, _, value = term.partition(op)
            return Requirement(key.strip(), "!=" if op == "!=" else "=", (value.strip(),))
    if term.startswith("!"):
        return Requirement(term[1:].strip(), "!")
    if re.fullmatch(r"[A-Za-z0-9_./-]+", term):
        return Requirement(term, "exists")
    raise UserInputError(f"invalid label selector term {term!r}", hint="use key=value, key in (a,b), key or !key")


def parse_selector(text: str | None) -> Selector:
    """Parse the string form used by ``kubectl -l`` and the ``labelSelector`` query parameter."""
    if not text:
        return Selector()
    return Selector(tuple(_parse_term(t) for t in _split_top(text)))


def selector_from_object(sel: Mapping[str, Any] | None) -> Selector:
    """Parse a ``LabelSelector`` object (``matchLabels`` + ``matchExpressions``)."""
    if not sel:
        return Selector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            raise UserInputError(f"invalid matchExpressions operator {expr.get('operator')!r}")
        reqs.append(Requirement(str(expr["key"]), op, tuple(str(v) for v in expr.get("values") or ())))
    return Selector(tuple(reqs))


def selector_to_string(sel: Mapping[str, Any] | None) -> str:
    """Render a ``LabelSelector`` object as the string form, for queries and evidence commands."""
    out: list[str] = []
    for r in selector_from_object(sel).requirements:
        if r.operator == "=":
            out.append(f"{r.key}={r.values[0]}")
        elif r.operator in ("in", "notin"):
            out.append(f"{r.key} {r.operator} ({','.join(r.values)})")
        elif r.operator == "exists":
            out.append(r.key)
        else:
            out.append(f"!{r.key}")
    return ",".join(out)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})
