"""The module registries the runner executes: built-in actions and checks, and the catalog the loader checks.

Importing ``runbook_engine.actions.builtin`` and ``runbook_engine.checks.builtin`` registers every
shipped module into ``ACTIONS``/``CHECKS``; ``catalog()`` turns the registries into the
``ModuleCatalog`` (name → argument model) that ``spec`` validates playbooks against.
"""

from __future__ import annotations

import importlib

from runbook_engine.actions.base import ACTIONS
from runbook_engine.checks.base import CHECKS
from runbook_engine.spec.catalog import ModuleCatalog

BUILTIN_PACKAGES = ("runbook_engine.actions.builtin", "runbook_engine.checks.builtin")


def load_builtin_modules() -> None:
    """Register every shipped action and check (idempotent)."""
    for name in BUILTIN_PACKAGES:
        importlib.import_module(name)


def catalog() -> ModuleCatalog:
    """The catalog of every registered action and check, built-ins included."""
    load_builtin_modules()
    return ModuleCatalog(
        actions={name: cls.Args for name, cls in ACTIONS.items()},
        checks={name: cls.Args for name, cls in CHECKS.items()},
        conditions={name: cls.condition_args for name, cls in ACTIONS.items() if cls.condition_args},
        template_args={name: cls.template_args for name, cls in ACTIONS.items() if cls.template_args},
    )
