"""The module catalog: which task and check modules exist and the pydantic model of their arguments.

The engine fills it from the action and check registries (this layer cannot import them); the
loader uses it to refuse unknown modules with a did-you-mean hint and to type-check arguments that
contain no template, and ``validate_args`` checks rendered arguments at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from runbook_engine.errors import Location, UserInputError, UserInputErrors
from runbook_engine.spec.hints import did_you_mean, one_of
from runbook_engine.spec.yamlpos import key_path


class ModuleKind(StrEnum):
    ACTION = "action"
    CHECK = "check"


@dataclass(frozen=True)
class ModuleCatalog:
    """Action name → args model and check name → args model."""

    actions: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    checks: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    #: action name → arguments whose entries are bare conditions (``assert``'s ``that``), evaluated at run time
    conditions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: action name → arguments naming a Jinja2 template file (``k8s_apply``'s ``template``), which
    #: resolves from the task's ``templates/`` directory, then its role or playbook directory
    template_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def names(self, kind: ModuleKind) -> Mapping[str, type[BaseModel]]:
        return self.actions if kind is ModuleKind.ACTION else self.checks

    def args_model(self, kind: ModuleKind, name: str, location: Location | None) -> type[BaseModel]:
        """The args model of module ``name``; an unknown name is an error with a did-you-mean hint."""
        known = self.names(kind)
        if name in known:
            return known[name]
        raise UserInputError(
            f"unknown {kind.value} module {name!r}",
            location,
            hint=did_you_mean(name, known, fallback=f"use {one_of(known)}" if known else ""),
        )


def _dotted(path: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in path)


def _error_location(
    path: tuple[int | str, ...], location: Location | None, locations: Mapping[str, Location], *, key: bool = False
) -> Location | None:
    """The most specific known location for an argument path (falling back to its parents).

    With ``key`` (an argument that should not be there) the location of the key itself, where the
    misspelling is, rather than of its value, which may start lines below.
    """
    if key and path and (found := locations.get(key_path(_dotted(path)))) is not None:
        return found
    for end in range(len(path), 0, -1):
        found = locations.get(_dotted(path[:end]))
        if found is not None:
            return found
    return location


def _message(error: Mapping[str, Any], module: str) -> tuple[str, str]:
    """A readable message and hint for one pydantic error."""
    path = _dotted(tuple(error["loc"]))
    kind = error["type"]
    if kind == "missing":
        return f"{module}: missing required argument {path!r}", f"add {path}: <value>"
    if kind == "extra_forbidden":
        return f"{module}: unknown argument {path!r}", ""
    where = f"argument {path!r}" if path else "arguments"
    return f"{module}: {where}: {error['msg']}", f"got {error.get('input')!r}"


def pydantic_errors(
    errors: Iterable[Mapping[str, Any]],
    *,
    module: str,
    location: Location | None,
    locations: Mapping[str, Location] | None = None,
    known_args: tuple[str, ...] = (),
) -> list[UserInputError]:
    """Turn pydantic errors (``ValidationError.errors()``) into located ``UserInputError``s."""
    found = locations or {}
    out: list[UserInputError] = []
    for error in errors:
        path = tuple(error["loc"])
        message, hint = _message(error, module)
        unknown = error["type"] == "extra_forbidden"
        if unknown and path:
            hint = did_you_mean(str(path[-1]), known_args, fallback=f"valid arguments: {', '.join(known_args)}")
        out.append(UserInputError(message, _error_location(path, location, found, key=unknown), hint=hint))
    return out


def validate_args(
    model: type[BaseModel],
    rendered_args: Mapping[str, Any],
    location: Location | None,
    *,
    module: str = "",
    locations: Mapping[str, Location] | None = None,
) -> BaseModel:
    """Validate rendered arguments; errors become ``UserInputError`` at the offending argument.

    ``locations`` maps dotted argument paths (``"spec.replicas"``) to where they were written, as
    recorded by the loader in ``TaskSpec.locations`` under ``"args.<path>"`` (pass
    ``args_locations(task.locations)``); ``key_path`` entries locate the argument names themselves.
    """
    try:
        return model.model_validate(dict(rendered_args))
    except ValidationError as exc:
        errors = pydantic_errors(
            exc.errors(),
            module=module or model.__name__,
            location=location,
            locations=locations,
            known_args=arg_names(model),
        )
        raise (errors[0] if len(errors) == 1 else UserInputErrors(errors)) from None


def args_locations(locations: Mapping[str, Location]) -> dict[str, Location]:
    """The ``"args.<path>"`` entries of a spec's ``locations``, keyed by ``<path>``."""
    return {k[len("args.") :]: v for k, v in locations.items() if k.startswith("args.")}


def arg_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The argument names a module accepts (aliases where defined)."""
    return tuple(f.alias or name for name, f in model.model_fields.items())
