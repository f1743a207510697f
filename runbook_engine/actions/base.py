"""The action plug-in contract: task modules that *plan* changes; the engine executes them.

An action validates its ``Args`` (pydantic), reads the cluster, and returns a ``Planned``: the
``Change``s it wants (possibly none: "already in desired state" is an explicit, reported result),
facts for later tasks and a result for ``register``. The engine journals each change's pre-image,
applies it, then calls ``settle`` for work that must follow the writes (waiting for a rollout,
waiting for a condition, running Ansible). ``plan`` must never write; dry runs call only ``plan``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from runbook_engine.kube.change import Change
from runbook_engine.kube.cluster import Cluster


class ActionArgs(BaseModel):
    """Base of every action's arguments: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ActionContext:
    """What an action may use while planning or settling."""

    cluster: Cluster
    vars: Mapping[str, Any] = field(default_factory=dict)
    check_mode: bool = False
    base_dir: Path = field(default_factory=Path.cwd)  # for relative files/templates (role or playbook dir)
    template_dirs: tuple[Path, ...] = ()
    progress: Callable[[str, int, int], None] | None = None  # (what, done, total)
    log: Callable[[str], None] | None = None


@dataclass
class Planned:
    """What an action intends: changes to execute, facts to set, a result to ``register``."""

    changes: list[Change] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    msg: str = ""
    failed: bool = False
    gate: str | None = None  # a pause action's operator-gate message: the run pauses here


@dataclass
class Settled:
    """What happened after the writes (waits, external runs)."""

    ok: bool = True
    msg: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    changed: bool = False  # e.g. Ansible reported changes of its own


A = TypeVar("A", bound=ActionArgs)


class Action(ABC, Generic[A]):
    """Subclass, set ``name`` and ``Args``, implement ``plan`` (and ``settle`` if needed), ``@register``."""

    name: ClassVar[str]
    Args: ClassVar[type[ActionArgs]] = ActionArgs
    #: Arguments holding bare Jinja2 conditions (like ``when``): the engine evaluates each entry to a
    #: boolean with its Templar instead of rendering it as a template (``assert``'s ``that``).
    condition_args: ClassVar[tuple[str, ...]] = ()
    #: Arguments naming a Jinja2 template file (relative to the task's ``templates/``, then its role or
    #: playbook directory), so a playbook check can parse the file before anything runs.
    template_args: ClassVar[tuple[str, ...]] = ()
    #: Whether the engine calls ``settle`` in check mode too (``settle`` then must not change anything,
    #: e.g. an Ansible run with ``--check``); by default check mode stops after ``plan``.
    settle_in_check_mode: ClassVar[bool] = False

    @abstractmethod
    def plan(self, ctx: ActionContext, args: A) -> Planned:
        """Read the cluster and return what should change; never write."""

    def settle(self, ctx: ActionContext, args: A, applied: list[Change]) -> Settled:
        """Work after the changes were applied (not called in check mode)."""
        return Settled()


ACTIONS: dict[str, type[Action[Any]]] = {}

T = TypeVar("T", bound=type[Action[Any]])


def register(cls: T) -> T:
    """Class decorator adding an action to the registry under its ``name``."""
    if cls.name in ACTIONS and ACTIONS[cls.name] is not cls:
        raise ValueError(f"duplicate action name {cls.name}")
    ACTIONS[cls.name] = cls
    return cls
