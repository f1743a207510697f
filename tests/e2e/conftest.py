"""Fixtures of the end-to-end acceptance tests (helpers in ``support``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import REPO, Platform


@pytest.fixture
def demo(tmp_path: Path) -> Platform:
    """The README's demo inventory, with its own journal (and so its own sandbox state)."""
    return Platform(REPO / "inventory" / "demo", tmp_path / "state", REPO / "inventory" / "demo" / "scenario.yaml")
