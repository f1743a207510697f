"""Typed readers for located YAML mappings: each wrong type or value is an error at that value.

The loader reads every keyword through these, so ``serial: fast`` or ``retries: "3x"`` is reported
at the exact line and column with the accepted forms as the hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any, TypeVar

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.filters import plain_mapping
from runbook_engine.spec.hints import did_you_mean, one_of
from runbook_engine.spec.model import Condition
from runbook_engine.spec.yamlpos import LocatedDict, LocatedList, key_path

E = TypeVar("E", bound=StrEnum)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAG = re.compile(r"^[^\s,]+$")


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def wrong(m: LocatedDict, key: str, expected: str, hint: str = "") -> UserInputError:
    """``<key> must be <expected>, got <what>`` at the value of ``key``."""
    return UserInputError(f"{key} must be {expected}, got {_type_name(m[key])}", m.value_loc(key), hint=hint)


def check_keys(m: LocatedDict, allowed: Iterable[str], what: str) -> None:
    """Refuse keys outside ``allowed`` with a did-you-mean hint."""
    names = sorted(allowed)
    for key in m:
        if not isinstance(key, str) or key not in allowed:
            raise UserInputError(
                f"unknown {what} keyword {key!r}",
                m.key_loc(key),
                hint=did_you_mean(str(key), names, fallback=f"valid keywords: {', '.join(names)}"),
            )


def mapping(value: Any, location: Location, what: str) -> LocatedDict:
    if not isinstance(value, LocatedDict):
        raise UserInputError(f"{what} must be a mapping, got {_type_name(value)}", location)
    return value


def sequence(value: Any, location: Location, what: str) -> LocatedList:
    if not isinstance(value, LocatedList):
        raise UserInputError(f"{what} must be a list, got {_type_name(value)}", location)
    return value


def get_str(m: LocatedDict, key: str, default: str | None = None) -> str | None:
    value = m.get(key, default)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise wrong(m, key, "a string")


def get_identifier(m: LocatedDict, key: str) -> str | None:
    value = get_str(m, key)
    if value is not None and not _IDENTIFIER.match(value):
        raise wrong(m, key, "a variable name (letters, digits, _)", hint="e.g. register: rollout_result")
    return value


def get_bool_or_str(m: LocatedDict, key: str) -> bool | str:
    value = m.get(key, False)
    if isinstance(value, bool | str):
        return value
    raise wrong(m, key, "true, false or a message/expression")


def get_int(m: LocatedDict, key: str, default: int, *, minimum: int = 0) -> int:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise wrong(m, key, f"a whole number >= {minimum}")
    return value


def get_number(m: LocatedDict, key: str, default: float | None, *, maximum: float | None = None) -> float | None:
    value = m.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise wrong(m, key, "a number >= 0")
    if maximum is not None and value > maximum:
        raise wrong(m, key, f"a number between 0 and {maximum:g}")
    return float(value)


def get_enum(m: LocatedDict, key: str, enum: type[E]) -> E | None:
    value = m.get(key)
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        choices = [e.value for e in enum]
        raise wrong(m, key, one_of(choices), hint=did_you_mean(str(value), choices, fallback="")) from None


def get_condition(m: LocatedDict, key: str) -> Condition:
    value = m.get(key)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, list) and all(isinstance(v, bool | str) for v in value):
        return list(value)
    raise wrong(m, key, "an expression, true/false or a list of expressions", hint="e.g. when: replicas | int > 1")


def get_tags(m: LocatedDict, key: str = "tags") -> tuple[str, ...]:
    """Tags as a list or a comma-separated string; each one non-empty without spaces."""
    value = m.get(key)
    if value is None:
        return ()
    items = [t.strip() for t in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(t, str) and _TAG.match(t) for t in items):
        raise wrong(m, key, "a tag or a list of tags (words without spaces or commas)", hint="e.g. tags: [mesh]")
    return tuple(items)


def get_vars(m: LocatedDict, key: str = "vars") -> dict[str, Any]:
    """The variables mapping under ``key`` (empty if absent)."""
    return variables(m.get(key), m.value_loc(key), key)


def variables(value: Any, location: Location, what: str) -> dict[str, Any]:
    """A mapping of valid variable names to values, as plain data."""
    if value is None:
        return {}
    if not isinstance(value, LocatedDict):
        raise UserInputError(f"{what} must be a mapping of variable names to values, got {_type_name(value)}", location)
    for name in value:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise UserInputError(
                f"{name!r} is not a valid variable name", value.key_loc(name), hint="use letters, digits and _"
            )
    return plain_mapping(value)


def get_str_list(m: LocatedDict, key: str) -> tuple[str, ...]:
    value = m.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise wrong(m, key, "a string or a list of strings")


def record(value: Any, path: str, out: dict[str, Location]) -> None:
    """Record the location of everything inside ``value`` under dotted paths below ``path``.

    A mapping's values are recorded under ``<path>.<key>``, its keys under ``key_path(<path>.<key>)``.
    """
    if isinstance(value, LocatedDict):
        for key, item in value.items():
            sub = f"{path}.{key}"
            out[sub] = value.value_loc(key)
            out[key_path(sub)] = value.key_loc(key)
            record(item, sub, out)
    elif isinstance(value, LocatedList):
        for index, item in enumerate(value):
            sub = f"{path}.{index}"
            out[sub] = value.item_loc(index)
            record(item, sub, out)


def locations_of(
    m: LocatedDict, *, skip: Iterable[str] = (), rename: dict[str, str] | None = None
) -> dict[str, Location]:
    """Locations of ``m``'s values (recursively), keyed by keyword, and of its keys (``key_path(keyword)``).

    ``rename`` maps e.g. a module key to "args".
    """
    out: dict[str, Location] = {}
    skipped = set(skip)
    for key, value in m.items():
        if key in skipped:
            continue
        name = (rename or {}).get(key, str(key))
        out[name] = m.value_loc(key)
        out[key_path(name)] = m.key_loc(key)
        record(value, name, out)
    return out
