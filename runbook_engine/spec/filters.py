"""Ansible's common Jinja filters and tests, reimplemented for the sandboxed template environment.

Jinja already provides ``default``, ``unique``, ``map``, ``selectattr``, ``join``, ``min``/``max``
and the ``defined``/``undefined`` tests; this module adds the Ansible ones playbooks rely on
(``bool``, ``to_yaml``, ``regex_replace``, ``combine``, ``dict2items``, ``ternary``, ``is failed``…)
with Ansible's argument names and behaviour.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml
from jinja2 import Undefined
from jinja2.exceptions import FilterArgumentError, UndefinedError

_TRUE_STRINGS = frozenset({"yes", "on", "1", "true", "y", "t"})


def plain(value: Any) -> Any:
    """A copy made of plain ``dict``/``list``/scalars (for dumping values of any mapping type)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Undefined):
        str(value)  # raises the undefined-variable error
    return value


def plain_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    """``plain`` for a mapping, typed as the variables/arguments dict it becomes."""
    return {str(k): plain(v) for k, v in value.items()}


def to_bool(value: Any) -> bool:
    """Ansible's ``bool``: yes/on/1/true/y/t (any case) and ``True``/1 are true, all else false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS


def to_yaml(value: Any, indent: int = 2, default_flow_style: bool | None = None) -> str:
    return yaml.safe_dump(plain(value), indent=indent, default_flow_style=default_flow_style, sort_keys=False)


def to_nice_yaml(value: Any, indent: int = 4) -> str:
    return yaml.safe_dump(plain(value), indent=indent, default_flow_style=False, sort_keys=False)


def to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    return json.dumps(plain(value), indent=indent, sort_keys=sort_keys)


def to_nice_json(value: Any, indent: int = 4, sort_keys: bool = True) -> str:
    return json.dumps(plain(value), indent=indent, sort_keys=sort_keys)


def from_yaml(value: str) -> Any:
    return plain(yaml.safe_load(value))


def from_yaml_all(value: str) -> list[Any]:
    return [plain(d) for d in yaml.safe_load_all(value)]


def from_json(value: str) -> Any:
    return json.loads(value)


def b64encode(value: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(str(value).encode(encoding)).decode("ascii")


def b64decode(value: str, encoding: str = "utf-8") -> str:
    return base64.b64decode(str(value), validate=True).decode(encoding)


def _flags(ignorecase: bool, multiline: bool) -> int:
    return (re.IGNORECASE if ignorecase else 0) | (re.MULTILINE if multiline else 0)


def regex_replace(
    value: Any, pattern: str = "", replacement: str = "", ignorecase: bool = False, multiline: bool = False,
    count: int = 0,
) -> str:
    return re.sub(pattern, replacement, str(value), count=count, flags=_flags(ignorecase, multiline))


def regex_search(
    value: Any, regex: str, *groups: str, ignorecase: bool = False, multiline: bool = False
) -> str | list[str | Any] | None:
    """The first match (or the requested ``'\\1'``/``'\\g<name>'`` groups of it), ``None`` without one."""
    match = re.search(regex, str(value), flags=_flags(ignorecase, multiline))
    if match is None:
        return None
    if not groups:
        return match.group(0)
    return [match.expand(g) for g in groups]


def regex_findall(value: Any, regex: str, multiline: bool = False, ignorecase: bool = False) -> list[Any]:
    return re.findall(regex, str(value), flags=_flags(ignorecase, multiline))


def regex_escape(value: str) -> str:
    return re.escape(value)


def dict2items(value: Mapping[Any, Any], key_name: str = "key", value_name: str = "value") -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise FilterArgumentError(f"dict2items requires a dictionary, got {type(value).__name__}")
    return [{key_name: k, value_name: v} for k, v in value.items()]


def items2dict(value: Iterable[Mapping[str, Any]], key_name: str = "key", value_name: str = "value") -> dict[Any, Any]:
    try:
        return {item[key_name]: item[value_name] for item in value}
    except (KeyError, TypeError) as exc:
        raise FilterArgumentError(f"items2dict needs items with {key_name!r} and {value_name!r}: {exc}") from None


def _merge(a: Mapping[Any, Any], b: Mapping[Any, Any], recursive: bool, list_merge: str) -> dict[Any, Any]:
    out = dict(a)
    for key, new in b.items():
        old = out.get(key)
        if recursive and isinstance(old, Mapping) and isinstance(new, Mapping):
            out[key] = _merge(old, new, recursive, list_merge)
        elif isinstance(old, list) and isinstance(new, list) and list_merge == "append":
            out[key] = old + new
        elif isinstance(old, list) and isinstance(new, list) and list_merge == "prepend":
            out[key] = new + old
        else:
            out[key] = new
    return out


def combine(*terms: Any, recursive: bool = False, list_merge: str = "replace") -> dict[Any, Any]:
    """Merge dictionaries left to right (later keys win); ``recursive`` merges nested dicts."""
    if list_merge not in ("replace", "append", "prepend"):
        raise FilterArgumentError("combine: list_merge must be replace, append or prepend")
    dicts: list[Mapping[Any, Any]] = []
    for term in terms:
        dicts.extend(term if isinstance(term, list | tuple) else [term])
    out: dict[Any, Any] = {}
    for d in dicts:
        if not isinstance(d, Mapping):
            raise FilterArgumentError(f"combine expects dictionaries, got {type(d).__name__}")
        out = _merge(out, d, recursive, list_merge)
    return out


def mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, Undefined):
        raise UndefinedError(msg or f"mandatory variable {value._undefined_name!r} is not defined")
    return value


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def flatten(value: Sequence[Any], levels: int | None = None, skip_nulls: bool = True) -> list[Any]:
    out: list[Any] = []
    for item in value:
        if item is None and skip_nulls:
            continue
        if isinstance(item, list | tuple) and (levels is None or levels > 0):
            out.extend(flatten(item, None if levels is None else levels - 1, skip_nulls))
        else:
            out.append(item)
    return out


def _ordered_unique(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def difference(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    other = list(b)
    return _ordered_unique(x for x in a if x not in other)


def intersect(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    other = list(b)
    return _ordered_unique(x for x in a if x in other)


def union(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    return _ordered_unique([*a, *b])


def split(value: str, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return str(value).split(sep, maxsplit)


def type_debug(value: Any) -> str:
    return type(value).__name__


def _version_key(version: Any) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(version)))


_VERSION_OPS: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    "<": lambda a, b: a < b, "lt": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, "le": lambda a, b: a <= b,
    ">": lambda a, b: a > b, "gt": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "ge": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "=": lambda a, b: a == b, "eq": lambda a, b: a == b,
    "!=": lambda a, b: a != b, "<>": lambda a, b: a != b, "ne": lambda a, b: a != b,
}  # fmt: skip


def version(value: Any, other: Any, operator: str = "eq") -> bool:
    """Loose numeric version comparison: ``'1.22.3' is version('1.22', '>=')``."""
    compare = _VERSION_OPS.get(operator)
    if compare is None:
        raise FilterArgumentError(f"version: unknown operator {operator!r}; use one of {', '.join(_VERSION_OPS)}")
    a, b = _version_key(value), _version_key(other)
    width = max(len(a), len(b))
    return compare(a + (0,) * (width - len(a)), b + (0,) * (width - len(b)))


def _result_flag(result: Any, key: str) -> bool:
    if not isinstance(result, Mapping):
        raise FilterArgumentError(f"the '{key}' test needs a registered task result, got {type(result).__name__}")
    return bool(result.get(key, False))


def is_failed(result: Any) -> bool:
    return _result_flag(result, "failed")


def is_succeeded(result: Any) -> bool:
    return not _result_flag(result, "failed")


def is_changed(result: Any) -> bool:
    return _result_flag(result, "changed")


def is_skipped(result: Any) -> bool:
    return _result_flag(result, "skipped")


def is_match(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    return re.match(pattern, str(value), flags=_flags(ignorecase, multiline)) is not None


def is_search(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> bool:
    return re.search(pattern, str(value), flags=_flags(ignorecase, multiline)) is not None


def is_subset(a: Iterable[Any], b: Iterable[Any]) -> bool:
    other = list(b)
    return all(x in other for x in a)


def is_superset(a: Iterable[Any], b: Iterable[Any]) -> bool:
    return is_subset(b, a)


FILTERS: dict[str, Callable[..., Any]] = {
    "bool": to_bool,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "from_yaml": from_yaml,
    "from_yaml_all": from_yaml_all,
    "from_json": from_json,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "regex_replace": regex_replace,
    "regex_search": regex_search,
    "regex_findall": regex_findall,
    "regex_escape": regex_escape,
    "dict2items": dict2items,
    "items2dict": items2dict,
    "combine": combine,
    "mandatory": mandatory,
    "ternary": ternary,
    "flatten": flatten,
    "difference": difference,
    "intersect": intersect,
    "union": union,
    "split": split,
    "quote": shlex.quote,
    "type_debug": type_debug,
}

TESTS: dict[str, Callable[..., bool]] = {
    "failed": is_failed,
    "failure": is_failed,
    "succeeded": is_succeeded,
    "success": is_succeeded,
    "successful": is_succeeded,
    "changed": is_changed,
    "change": is_changed,
    "skipped": is_skipped,
    "skip": is_skipped,
    "match": is_match,
    "search": is_search,
    "regex": is_search,
    "subset": is_subset,
    "superset": is_superset,
    "version": version,
    "version_compare": version,
}
