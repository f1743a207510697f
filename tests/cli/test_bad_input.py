"""Bad input through ``runbook run``: refused at file:line:column with a hint, exit 4, nothing written.

One case per folder, ``cases/bad/<case>/``: ``playbook.yml`` (plus the roles, inventory or extra-vars
file the case needs) and ``expected.yml`` with ``file`` (relative to the case), ``line``, ``column``,
a ``message`` fragment and optionally a ``hint`` fragment, ``inventory`` (relative to the case; the
one-cluster engine inventory otherwise), ``extra_vars`` (``-e`` values, ``@name`` relative to the
case) and ``xfail`` (a known bug, described exactly). Every playbook, were it valid, writes to the
cluster in its first phase, so zero writes shows the mistake was refused before the run began.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from engine.helpers import CASES as ENGINE_CASES

from runbook_engine.cli.main import EXIT_INVALID, EXIT_OK
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.kube.refs import ObjectRef

from .conftest import Invocation

BAD = Path(__file__).parent / "cases" / "bad"
CASES = sorted(p for p in BAD.iterdir() if (p / "expected.yml").is_file())


def _expected(case: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((case / "expected.yml").read_text())
    return loaded


def _param(case: Path) -> Any:
    reason = _expected(case).get("xfail")
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.name, marks=marks)


def _arguments(case: Path, expected: dict[str, Any]) -> list[str]:
    """``run PLAYBOOK -i INVENTORY [-e ...]`` for a case."""
    inventory = case / expected["inventory"] if "inventory" in expected else ENGINE_CASES / "inventory"
    args = ["run", str(case / "playbook.yml"), "-i", str(inventory)]
    for value in expected.get("extra_vars", []):
        args += ["-e", f"@{case / value[1:]}" if value.startswith("@") else value]
    return args


def _reported_lines(out: str, where: str) -> list[str]:
    """The lines of the output that report an error at ``where`` (``file:line:column``)."""
    return [line for line in out.splitlines() if f"{where}: " in line]


def test_there_are_eighteen_distinct_cases_and_fifteen_pass() -> None:
    expected = [_expected(c) for c in CASES]
    assert len(CASES) >= 18
    mistakes = {(e["message"], e["file"], e["line"], e["column"]) for e in expected}
    assert len(mistakes) == len(CASES), "each case is a different mistake"
    assert sum(1 for e in expected if "xfail" not in e) >= 15


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_run_refuses_bad_input_at_its_location_and_writes_nothing(
    case: Path, runbook: Invocation, cluster: MemoryCluster
) -> None:
    expected = _expected(case)
    code, out = runbook(*_arguments(case, expected))

    assert code == EXIT_INVALID, out
    where = f"{case / expected['file']}:{expected['line']}:{expected['column']}"
    reported = _reported_lines(out, where)
    assert reported, f"no error at {where}:\n{out}"
    assert any(expected["message"] in line for line in reported), out
    if "hint" in expected:
        hints = [line for line in out.splitlines() if line.lstrip().startswith("hint: ")]
        assert any(expected["hint"] in line for line in hints), out
    assert cluster.writes == 0
    assert not runbook.state_dir.exists(), "a refused playbook must not start a run"


def test_the_deep_undefined_variable_case_writes_in_every_phase_once_defined(
    runbook: Invocation, cluster: MemoryCluster
) -> None:
    """The control for zero writes: with the misspelled variable defined, phases 1-3 all write."""
    case = BAD / "undefined_variable_in_phase_3"
    code, out = runbook(*_arguments(case, {"extra_vars": ["mesh_revison=1-22"]}))

    assert code == EXIT_OK, out
    assert cluster.writes > 0
    namespace = cluster.get(ObjectRef("v1", "Namespace", "", "sre")) or {}
    assert namespace["metadata"]["labels"]["istio.io/rev"] == "1-22"
    assert cluster.get(ObjectRef("v1", "ConfigMap", "sre", "mesh-config")) is not None
    done = cluster.get(ObjectRef("v1", "ConfigMap", "sre", "rollout-done")) or {}
    assert done["data"] == {"revision": "1-22"}
