"""The subset of kubectl JSONPath that ``wait_for`` needs.

Supported: ``{.a.b}`` or ``.a.b`` (braces and a leading ``$`` optional), ``['key']`` for keys with
dots, ``[n]`` indexes, ``[*]`` wildcards and filters ``[?(@.path=="value")]`` / ``!=``. Values are
rendered as kubectl prints them: strings as-is, booleans ``true``/``false``, maps and lists as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runbook_engine.errors import UserInputError

_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-/]+)
      | \[\s*['"](?P<quoted>[^'"]+)['"]\s*\]
      | \[(?P<index>-?\d+)\]
      | \[(?P<star>\*)\]
      | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_\-/]+)+)\s*(?P<op>==|!=)\s*(?P<fvalue>"[^"]*"|'[^']*'|[^)\s]+)\)\]
      | \.(?P<dotstar>\*)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Step:
    kind: str  # field | index | star | filter
    key: str = ""
    index: int = 0
    fpath: tuple[str, ...] = ()
    op: str = "=="
    fvalue: str = ""


def _step(m: re.Match[str]) -> Step:
    if m["field"] is not None or m["quoted"] is not None:
        return Step("field", key=m["field"] or m["quoted"])
    if m["index"] is not None:
        return Step("index", index=int(m["index"]))
    if m["star"] is not None or m["dotstar"] is not None:
        return Step("star")
    raw = m["fvalue"].strip("'\"")
    return Step("filter", fpath=tuple(m["fpath"].strip(".").split(".")), op=m["op"], fvalue=raw)


def parse(expr: str) -> tuple[Step, ...]:
    """Parse a JSONPath expression; a ``UserInputError`` names the part that is not understood."""
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    text = text[1:] if text.startswith("$") else text
    if text and not text.startswith((".", "[")):
        text = "." + text
    steps, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UserInputError(f"unsupported JSONPath {expr!r} at {text[pos:]!r}",
                                 hint="use .field, ['key'], [n], [*] or [?(@.field==\"value\")]")
        steps.append(_step(m))
        pos = m.end()
    return tuple(steps)


def render(value: Any) -> str:
    """A value as kubectl's JSONPath output prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        yield from node.values()
    elif isinstance(node, list):
        yield from node


def _get_path(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _apply(step: Step, node: Any) -> Iterator[Any]:
    if step.kind == "field":
        if isinstance(node, dict) and step.key in node:
            yield node[step.key]
    elif step.kind == "index":
        if isinstance(node, list) and -len(node) <= step.index < len(node):
            yield node[step.index]
    elif step.kind == "star":
        yield from _children(node)
    else:
        for item in node if isinstance(node, list) else []:
            equal = render(_get_path(item, step.fpath)) == step.fvalue
            if equal == (step.op == "=="):
                yield item


def find(obj: Any, expr: str) -> list[Any]:
    """Every value ``expr`` selects in ``obj`` (an empty list when the path does not exist)."""
    nodes = [obj]
    for step in parse(expr):
        nodes = [child for node in nodes for child in _apply(step, node)]
    return nodes
