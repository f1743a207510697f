"""Bad input, one case per folder: each must be refused at the exact file:line:column, with a hint.

A case is ``cases/bad/<case>/`` holding ``playbook.yml`` (and roles, task files or an inventory as
needed) and ``expected.yml``: ``file`` (relative to the case), ``line``, ``column``, a ``message``
fragment, optionally a ``hint`` fragment and an ``inventory`` path. Without ``inventory/`` the case
uses the shared ``cases/inventory``. The first error reported — by loading the inventory, loading
the playbook or the static check, in that order, exactly as ``runbook check`` does — must match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.errors import UserInputError, UserInputErrors
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.static_check import check_playbook

from .conftest import CATALOG

CASES = Path(__file__).parent / "cases"
BAD = sorted(p for p in (CASES / "bad").iterdir() if p.is_dir())


def _first_error(case: Path, expected: dict[str, Any]) -> UserInputError:
    inventory_path = case / expected.get("inventory", "inventory")
    if "inventory" not in expected and not inventory_path.exists():
        inventory_path = CASES / "inventory"
    try:
        inventory = load_inventory(inventory_path, extra_vars=expected.get("extra_vars"))
        playbook = load_playbook(case / "playbook.yml", catalog=CATALOG)
    except UserInputErrors as exc:
        return exc.errors[0]
    except UserInputError as exc:
        return exc
    errors = check_playbook(playbook, inventory, catalog=CATALOG, extra_vars=expected.get("extra_vars"))
    assert errors, "the case was accepted"
    return errors[0]


def test_there_are_at_least_twenty_bad_cases() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("case", BAD, ids=[p.name for p in BAD])
def test_bad_input_is_reported_at_its_location(case: Path) -> None:
    expected = yaml.safe_load((case / "expected.yml").read_text())
    error = _first_error(case, expected)
    assert error.location is not None, str(error)
    where = (Path(error.location.file).relative_to(case).as_posix(), error.location.line, error.location.column)
    assert where == (expected["file"], expected["line"], expected["column"]), str(error)
    assert expected["message"] in error.message, str(error)
    assert expected.get("hint", "") in error.hint, str(error)
    if expected["line"]:
        assert str(error).startswith(f"{error.location.file}:{expected['line']}:{expected['column']}: ")
