"""YAML loading that remembers where every mapping key, value and list item came from.

Playbooks, roles and inventory are parsed into ``LocatedDict``/``LocatedList`` (plain ``dict`` and
``list`` subclasses) that carry the 1-based ``Location`` of the node itself, of each key and of each
value, so a mistake found anywhere later can point at file:line:column. Duplicate keys in a mapping
are refused (YAML tolerates them silently; in a runbook the second one wins unnoticed), and a YAML
syntax error keeps the parser's position instead of losing it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from runbook_engine.errors import Location, UserInputError


class LocatedDict(dict[Any, Any]):
    """A YAML mapping that knows its own, its keys' and its values' locations."""

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location
        self.key_locations: dict[Any, Location] = {}
        self.value_locations: dict[Any, Location] = {}

    def key_loc(self, key: Any) -> Location:
        """Where ``key`` is written (the mapping's own location if unknown)."""
        return self.key_locations.get(key, self.location)

    def value_loc(self, key: Any) -> Location:
        """Where the value of ``key`` starts (the key's location if unknown)."""
        return self.value_locations.get(key, self.key_loc(key))


class LocatedList(list[Any]):
    """A YAML sequence that knows its own and its items' locations."""

    def __init__(self, location: Location) -> None:
        super().__init__()
        self.location = location
        self.item_locations: list[Location] = []

    def item_loc(self, index: int) -> Location:
        """Where item ``index`` starts (the list's location if unknown)."""
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


KEY_SUFFIX = "#key"


def key_path(path: str) -> str:
    """The entry under which a locations map records where the *key* ``path`` ends in was written.

    Locations maps (``TaskSpec.locations`` and the like) key a value's location by its dotted path
    (``"args.spec"``); the location of the key itself is kept next to it as ``"args.spec#key"``.
    """
    return path + KEY_SUFFIX


def location_of(value: Any, fallback: Location) -> Location:
    """The location carried by a loaded mapping or list, else ``fallback``."""
    if isinstance(value, LocatedDict | LocatedList):
        return value.location
    return fallback


def _mark_location(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


class _PositionLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings and sequences are ``LocatedDict``/``LocatedList``."""

    source_name: str = "<string>"

    def node_location(self, node: Node) -> Location:
        return _mark_location(self.source_name, node.start_mark)


def _own_keys(loader: _PositionLoader, node: MappingNode) -> None:
    """Refuse a key written twice in one mapping (merge keys ``<<`` may still be overridden)."""
    seen: dict[Any, Location] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        where = loader.node_location(key_node)
        if not isinstance(key, Hashable):
            raise UserInputError("a mapping key must be a plain value", where, hint="quote the key")
        if key in seen:
            raise UserInputError(
                f"duplicate key {key!r} (first defined at line {seen[key].line})",
                where,
                hint="remove one of the two; YAML would silently keep only the last",
            )
        seen[key] = where


def _construct_mapping(loader: _PositionLoader, node: MappingNode) -> Iterator[LocatedDict]:
    data = LocatedDict(loader.node_location(node))
    yield data
    _own_keys(loader, node)
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_locations[key] = loader.node_location(key_node)
        data.value_locations[key] = loader.node_location(value_node)


def _construct_sequence(loader: _PositionLoader, node: SequenceNode) -> Iterator[LocatedList]:
    data = LocatedList(loader.node_location(node))
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_locations.append(loader.node_location(item))


_PositionLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_PositionLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _syntax_error(file: str, exc: yaml.YAMLError) -> UserInputError:
    if isinstance(exc, yaml.MarkedYAMLError):
        where = _mark_location(file, exc.problem_mark or exc.context_mark)
        parts = [p for p in (exc.context, exc.problem) if p]
        return UserInputError(
            "YAML syntax error: " + ", ".join(parts),
            where,
            hint="check indentation, a missing ':' or an unclosed quote or bracket near this position",
        )
    return UserInputError(f"YAML syntax error: {exc}", Location(file))


def load_yaml_text(text: str, file: str) -> Any:
    """Parse one YAML document from ``text``; ``file`` names it in locations."""
    loader = _PositionLoader(text)
    loader.source_name = file
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise _syntax_error(file, exc) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path, *, what: str, referenced_at: Location | None = None) -> Any:
    """Read and parse ``path``; a missing file is a ``UserInputError`` at ``referenced_at``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(
            f"{what} not found: {path}",
            referenced_at or Location(str(path)),
            hint="check the path; relative paths resolve from the file that names them",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read {what} {path}: {exc}", referenced_at or Location(str(path))) from None
    return load_yaml_text(text, str(path))

