"""Sandboxed Jinja2 templating with Ansible's semantics and located errors.

``Templar(variables)`` renders task arguments and evaluates conditions. Like Ansible:

* a string that is exactly one ``{{ expr }}`` yields the expression's native value (a list stays a
  list, ``3`` stays an int); any other string containing a template renders to a string;
* variables are templated lazily, on first use, so ``ns: "{{ app }}-mesh"`` works in any scope;
* conditions (``when``, ``until``, ``changed_when``, ``failed_when``) are bare expressions, a list
  means all of them, and the result must be a boolean (as Ansible 2.19 requires: ``"false"`` the
  string is not silently true).

The environment is ``ImmutableSandboxedEnvironment`` (no Python internals, no mutation of values)
with a strict undefined that still allows ``a.b | default(x)``. Every failure is a
``UserInputError`` naming where the template was written and a hint.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jinja2 import ChainableUndefined, StrictUndefined, Template, Undefined
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runbook_engine.errors import Location, UserInputError
from runbook_engine.spec.filters import FILTERS, TESTS
from runbook_engine.spec.hints import did_you_mean, similar

_VALUE = "__runbook_value__"
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_NO_FILTER = re.compile(r"No (filter|test) named '([^']+)'")
# what rendering user templates may raise (filters run user-chosen code paths on user data)
TEMPLATE_ERRORS = (TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError,
                re.error, yaml.YAMLError, RecursionError)  # fmt: skip


class _VariableError(Exception):
    """A variable's own template failed while another template used it."""

    def __init__(self, error: UserInputError) -> None:
        super().__init__(error.message)
        self.error = error


class StrictChainableUndefined(ChainableUndefined, StrictUndefined):
    """Undefined that fails on any use, but lets ``a.b.c | default(x)`` reach the filter."""


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictChainableUndefined, keep_trailing_newline=True, autoescape=False
    )
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    return env


ENV = _environment()


def has_template(value: str) -> bool:
    """Whether a string contains Jinja markup (``{{``, ``{%`` or ``{#``)."""
    return "{{" in value or "{%" in value or "{#" in value


def contains_template(value: Any) -> bool:
    """Whether any string inside ``value`` (recursively) contains Jinja markup."""
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, Mapping):
        return any(contains_template(k) or contains_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_template(v) for v in value)
    return False


def single_expression(source: str) -> str | None:
    """The inner expression if ``source`` is exactly one ``{{ expr }}``, else ``None``."""
    try:
        tokens = [t for _, t, _ in ENV.lex(source)]
    except TemplateSyntaxError:
        return None
    if not tokens or tokens[0] != "variable_begin" or tokens[-1] != "variable_end":
        return None
    if tokens.count("variable_begin") != 1 or "data" in tokens:
        return None
    inner = source.strip()[2:-2]
    inner = inner[1:] if inner[:1] in ("-", "+") else inner  # whitespace control: {{- x }}
    inner = inner[:-1] if inner[-1:] in ("-", "+") else inner  # {{ x -}}
    return inner.strip()


@functools.lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """Compile (and cache) a template; raises Jinja's syntax/assertion errors."""
    return ENV.from_string(source)


@functools.lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Template:
    """Compile a bare expression as a template that stores its value."""
    return ENV.from_string("{% set " + _VALUE + " = " + expression + " %}")


def _template_line(location: Location | None, lineno: int | None) -> str:
    """" (line N of the template)" for errors past a multi-line template's first line."""
    if location is None or not lineno or lineno <= 1:
        return ""
    return f" (line {lineno} of the template)"


class _LazyVariables(Mapping[str, Any]):
    """Variables as Jinja sees them: templated on first use, cached, globals as fallback."""

    def __init__(self, templar: Templar, raw: Mapping[str, Any], literal: Collection[str]) -> None:
        self._templar = templar
        self._raw = raw
        self._cache: dict[str, Any] = {name: raw[name] for name in literal if name in raw}
        self._resolving: list[str] = []

    def __contains__(self, key: object) -> bool:
        return key in self._raw or key in ENV.globals

    def __iter__(self) -> Iterator[str]:
        return iter({**ENV.globals, **self._raw})

    def __len__(self) -> int:
        return len({**ENV.globals, **self._raw})

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        if key not in self._raw:
            return ENV.globals[key]
        if key in self._resolving:
            chain = " -> ".join([*self._resolving[self._resolving.index(key) :], key])
            raise _VariableError(
                UserInputError(f"variable {key!r} refers to itself ({chain})", hint="break the cycle")
            )
        self._resolving.append(key)
        try:
            value = self._templar.render_nested(self._raw[key], key)
        finally:
            self._resolving.pop()
        self._cache[key] = value
        return value


class Templar:
    """Renders values and evaluates conditions against one set of variables.

    Variables named in ``literal`` are used exactly as they are, never templated: pass the names of
    registered results and facts, whose strings come from the cluster (a registered ConfigMap may
    hold Go or Helm templates with ``{{ }}``) — Ansible's "unsafe" values.
    """

    def __init__(self, variables: Mapping[str, Any], *, literal: Collection[str] = ()) -> None:
        self._raw = variables
        self._vars = _LazyVariables(self, variables, literal)

    @property
    def variables(self) -> Mapping[str, Any]:
        """The raw (untemplated) variables in scope."""
        return self._raw

    def render(
        self, value: Any, *, location: Location | None = None, locations: Mapping[str, Location] | None = None
    ) -> Any:
        """Render every template inside ``value`` (dicts, lists, tuples recursively).

        ``locations`` maps dotted paths inside ``value`` (``"spec.replicas"``) to where they were
        written, so an error points at the exact string; ``location`` is the fallback.
        """
        return self._render(value, (), location, locations or {})

    def render_text(self, source: str, *, location: Location | None = None) -> str:
        """Render a whole template (e.g. a ``templates/*.j2`` file) to text, never to a native value.

        ``location`` is where the text starts (``file:1:1`` for a file): an error points at the line
        and column inside the text, and names the text rather than quoting all of it.
        """
        try:
            return self._render_string(source)
        except UserInputError:
            raise
        except _VariableError as exc:
            raise UserInputError(exc.error.message, location, hint=exc.error.hint) from None
        except TEMPLATE_ERRORS as exc:
            raise text_error(exc, source, location, names=self._raw.keys()) from None

    def evaluate(self, condition: Any, *, location: Location | None = None) -> bool:
        """Evaluate a ``when``-style condition: ``None`` is true, a list means all, results must be bool."""
        if condition is None or isinstance(condition, bool):
            return condition is not False
        if isinstance(condition, list | tuple):
            return all(self.evaluate(c, location=location) for c in condition)
        if not isinstance(condition, str):
            raise UserInputError(
                f"a condition must be an expression, a boolean or a list of them, not {condition!r}", location
            )
        result = self._run(lambda: self._condition_value(condition), condition, location)
        if isinstance(result, bool):
            return result
        raise UserInputError(
            f"condition {condition!r} gave {result!r} ({type(result).__name__}), not a boolean",
            location,
            hint="compare explicitly: '| bool' for yes/no strings, '| length > 0' for lists, '!= 0' for numbers",
        )

    def render_nested(self, value: Any, name: str) -> Any:
        """Render a variable's own value when a template uses it (errors name the variable)."""
        try:
            return self._render(value, (), None, {})
        except UserInputError as exc:
            raise _VariableError(UserInputError(f"in variable {name!r}: {exc.message}", hint=exc.hint)) from None

    # -- internals -------------------------------------------------------------------------

    def _render(
        self, value: Any, path: tuple[str, ...], location: Location | None, locations: Mapping[str, Location]
    ) -> Any:
        if isinstance(value, str):
            return self._render_str(value, _nearest(path, location, locations)) if has_template(value) else value
        if isinstance(value, Mapping):
            return {
                self._render(k, path, location, locations): self._render(v, (*path, str(k)), location, locations)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._render(v, (*path, str(i)), location, locations) for i, v in enumerate(value)]
        return value

    def _render_str(self, source: str, location: Location | None) -> Any:
        expression = single_expression(source)
        if expression is not None:
            return self._run(lambda: self._expression_value(expression), source, location)
        return self._run(lambda: self._render_string(source), source, location)

    def _render_string(self, source: str) -> str:
        template = compile_template(source)
        context = template.new_context(self._vars, shared=True)  # type: ignore[arg-type]  # lazy mapping
        return "".join(template.root_render_func(context))

    def _expression_value(self, expression: str) -> Any:
        template = compile_expression(expression)
        context = template.new_context(self._vars, shared=True)  # type: ignore[arg-type]  # lazy mapping
        for _ in template.root_render_func(context):
            pass
        value = context.vars[_VALUE]
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return value

    def _condition_value(self, condition: str) -> Any:
        expression = single_expression(condition)
        if expression is None and has_template(condition):
            expression = self._render_string(condition)
        return self._expression_value(expression if expression is not None else condition)

    def _run(self, work: Callable[[], Any], source: str, location: Location | None) -> Any:
        try:
            return work()
        except UserInputError:
            raise
        except _VariableError as exc:
            raise UserInputError(exc.error.message, location, hint=exc.error.hint) from None
        except TEMPLATE_ERRORS as exc:
            raise self._error(exc, source, location) from None

    def _error(self, exc: BaseException, source: str, location: Location | None) -> UserInputError:
        return template_error(exc, source, location, names=self._raw.keys())


def _nearest(path: tuple[str, ...], location: Location | None, locations: Mapping[str, Location]) -> Location | None:
    for end in range(len(path), 0, -1):
        found = locations.get(".".join(path[:end]))
        if found is not None:
            return found
    return location


def template_error(
    exc: BaseException, source: str, location: Location | None, *, names: Any = ()
) -> UserInputError:
    """A located ``UserInputError`` (with a fix hint) for a Jinja failure while rendering ``source``."""
    text = str(getattr(exc, "message", None) or exc)
    where = _template_line(location, getattr(exc, "lineno", None))
    if isinstance(exc, UndefinedError):
        return _undefined_error(text, source, location, names)
    if isinstance(exc, SecurityError):
        return UserInputError(
            f"unsafe template {source!r}: {text}", location,
            hint="templates run sandboxed: Python internals (names starting with '_') and mutation are blocked",
        )  # fmt: skip
    if isinstance(exc, TemplateSyntaxError):
        return _syntax_error(text, source, location, where)
    return UserInputError(
        f"template {source!r} failed: {type(exc).__name__}: {text}{where}", location,
        hint="check the filter arguments and the types of the values used",
    )  # fmt: skip


def text_error(exc: BaseException, source: str, start: Location | None, *, names: Any = ()) -> UserInputError:
    """A ``UserInputError`` for a Jinja failure in a whole text template (a ``templates/*.j2`` file).

    ``start`` is where the text begins; the error points at the failing line (and, for an undefined
    variable, the column of its first use) and names the text's file instead of quoting it.
    """
    text = str(getattr(exc, "message", None) or exc)
    match = _UNDEFINED_NAME.search(text) if isinstance(exc, UndefinedError) else None
    label = f"template {Path(start.file).name}" if start is not None else "template text"
    if match is not None:
        name = match.group(1)
        close = similar(name, [str(n) for n in names])
        near = f"similar names in scope: {', '.join(close)}; " if close else ""
        return UserInputError(
            f"undefined variable {name!r} in {label}", within(start, source, name_position(source, name)),
            hint=f"{near}define {name} in vars, the inventory or with -e {name}=..., or use '| default(...)'",
        )  # fmt: skip
    lineno = _failing_line(exc, source)
    where = within(start, source, (lineno, 1) if lineno is not None else None)
    if isinstance(exc, TemplateSyntaxError | SecurityError | UndefinedError):
        return UserInputError(f"{label}: {text}", where, hint=template_error(exc, "", None).hint)
    return UserInputError(
        f"{label} failed: {type(exc).__name__}: {text}", where,
        hint="check the filter arguments and the types of the values used",
    )  # fmt: skip


def within(start: Location | None, source: str, position: tuple[int, int] | None) -> Location | None:
    """The location of 1-based ``(line, column)`` inside ``source``, which begins at ``start``."""
    if start is None or position is None or start.line <= 0:
        return start
    line, column = position
    line = min(line, max(1, source.count("\n") + 1))
    if line == 1:
        return Location(start.file, start.line, (start.column or 1) + column - 1)
    return Location(start.file, start.line + line - 1, column)


def _inside_tag(before: str) -> bool:
    opened = before.count("{{") + before.count("{%")
    return opened > before.count("}}") + before.count("%}")


def name_position(source: str, name: str, lineno: int | None = None) -> tuple[int, int] | None:
    """1-based ``(line, column)`` of the ``{{ }}``/``{% %}`` tag that first uses variable ``name`` in
    ``source`` (on line ``lineno`` only, if given), or ``None`` when it cannot be found."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    for number, line in enumerate(source.splitlines(), start=1):
        if lineno is not None and number != lineno:
            continue
        for match in pattern.finditer(line):
            before = line[: match.start()]
            if _inside_tag(before):
                return number, max(before.rfind("{{"), before.rfind("{%")) + 1
    return (lineno, 1) if lineno is not None else None


def _failing_line(exc: BaseException, source: str) -> int | None:
    """The line of ``source`` a Jinja error was raised on: a syntax error's own line, else the template
    line of the innermost compiled-template frame (Jinja names those frames ``<template>``)."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int) and lineno > 0:
        return lineno
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            found = tb.tb_lineno
        tb = tb.tb_next
    if found is None or isinstance(exc, TemplateSyntaxError):
        return None
    return compile_template(source).get_corresponding_lineno(found)


def _undefined_error(text: str, source: str, location: Location | None, names: Any) -> UserInputError:
    match = _UNDEFINED_NAME.search(text)
    if match is None:
        return UserInputError(
            f"undefined value in template {source!r}: {text}", location,
            hint="check the key or attribute name, or give a fallback with '| default(...)'",
        )  # fmt: skip
    name = match.group(1)
    close = similar(name, [str(n) for n in names])
    near = f"similar names in scope: {', '.join(close)}; " if close else ""
    return UserInputError(
        f"undefined variable {name!r} in template {source!r}", location,
        hint=f"{near}define {name} in vars, the inventory or with -e {name}=..., or use '| default(...)'",
    )  # fmt: skip


def _syntax_error(text: str, source: str, location: Location | None, where: str) -> UserInputError:
    match = _NO_FILTER.search(text)
    if match is not None:
        kind, name = match.groups()
        known = ENV.filters if kind == "filter" else ENV.tests
        return UserInputError(
            f"unknown Jinja {kind} {name!r} in template {source!r}{where}", location,
            hint=did_you_mean(name, known, fallback=f"see docs/playbook-language.md for the {kind}s available"),
        )  # fmt: skip
    return UserInputError(
        f"template syntax error in {source!r}: {text}{where}", location,
        hint="check the {{ }} / {% %} delimiters, quotes and parentheses",
    )  # fmt: skip
