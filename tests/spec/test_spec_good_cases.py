"""Good playbooks load to the expected model and pass the static check with no findings.

A case is ``cases/good/<case>/`` with ``playbook.yml`` (roles, vars files...) and ``expected.yml``:
a subset of the loaded ``PlaybookSpec`` as JSON-like data. Every key written there must match;
lists must match in length, item by item. ``{case}`` stands for the case directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.static_check import check_playbook

from .conftest import CATALOG

CASES = Path(__file__).parent / "cases"
GOOD = sorted(p for p in (CASES / "good").iterdir() if p.is_dir())


def _assert_subset(expected: Any, actual: Any, path: str, case: Path) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing; have {sorted(actual)}"
            _assert_subset(value, actual[key], f"{path}.{key}", case)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(expected) == len(actual), f"{path}: {len(actual)} items, expected {len(expected)}: {actual!r}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            _assert_subset(want, got, f"{path}.{index}", case)
    elif isinstance(expected, str) and "{case}" in expected:
        assert actual == expected.replace("{case}", str(case)), path
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("case", GOOD, ids=[p.name for p in GOOD])
def test_good_playbook_loads_to_the_expected_model(case: Path) -> None:
    playbook = load_playbook(case / "playbook.yml", catalog=CATALOG)
    expected = yaml.safe_load((case / "expected.yml").read_text())
    _assert_subset(expected, playbook.model_dump(mode="json"), "playbook", case)


@pytest.mark.parametrize("case", GOOD, ids=[p.name for p in GOOD])
def test_good_playbook_passes_the_static_check(case: Path) -> None:
    inventory = load_inventory(CASES / "inventory")
    playbook = load_playbook(case / "playbook.yml", catalog=CATALOG)
    assert check_playbook(playbook, inventory, catalog=CATALOG, extra_vars={}) == []
