"""Report test helpers: the ``stated`` check, and the rollout case (playbook, inventory, seeded cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from runbook_engine.checks.base import CHECKS, Check, CheckArgs, CheckContext, register
from runbook_engine.engine.modules import catalog
from runbook_engine.kube.memory import MemoryCluster
from runbook_engine.report.verdict import Evidence, Section, Status, Verdict
from runbook_engine.spec.inventory import load_inventory
from runbook_engine.spec.loader import load_playbook
from runbook_engine.spec.model import InventorySpec, PlaybookSpec

ROLLOUT = Path(__file__).parent / "cases" / "rollout"
PLAYBOOK = ROLLOUT / "playbook.yml"
INVENTORY = ROLLOUT / "inventory"
#: Values of Secrets in the case: one seeded in the cluster, one applied by the `enrol` phase.
PLANTED = ("planted-db-password-93ad51", "planted-4f1b9c2e7d-secret")


class StatedArgs(CheckArgs):
    status: Status
    summary: str
    section: Section = Section.GENERAL
    hint: str = ""
    output: str = ""
    flows: list[dict[str, Any]] = Field(default_factory=list)


class Stated(Check[StatedArgs]):
    """Returns the verdict its arguments describe: a check with a known answer, for report tests."""

    name = "stated"
    purpose = "state a known verdict"
    Args = StatedArgs

    def run(self, ctx: CheckContext, args: StatedArgs) -> Verdict:
        data: dict[str, Any] = {"flows": args.flows} if args.flows else {}
        return Verdict(self.name, ctx.title, args.status, args.summary, args.hint,
                       (Evidence("kubectl get pods -A", args.output),), args.section, self.purpose, data)


if "stated" not in CHECKS:
    register(Stated)


def rollout_cluster() -> MemoryCluster:
    return MemoryCluster(yaml.safe_load((ROLLOUT / "cluster.yaml").read_text()), name="lab")


def rollout_specs() -> tuple[PlaybookSpec, InventorySpec]:
    return load_playbook(PLAYBOOK, catalog=catalog()), load_inventory(INVENTORY)
