"""The code's own bar: ruff, mypy (strict) and the import-linter layer contracts all pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    out = _run(str(BIN / "ruff"), "check", "runbook_engine", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    out = _run(str(BIN / "mypy"), "runbook_engine")
    assert out.returncode == 0, out.stdout + out.stderr


def test_layer_contracts_hold() -> None:
    out = _run(str(BIN / "lint-imports"), "--no-cache")
    assert out.returncode == 0, out.stdout + out.stderr
