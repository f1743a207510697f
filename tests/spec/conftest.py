"""A small module catalog for spec tests (stand-ins with the shapes of the real action/check args)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from runbook_engine.spec.catalog import ModuleCatalog


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplyArgs(_Args):
    manifest: dict[str, Any] | None = None
    template: str | None = None
    namespace: str | None = None


class LabelArgs(_Args):
    kind: str
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class RestartArgs(_Args):
    kind: str = "Deployment"
    name: str
    namespace: str
    timeout: int = 300


class SetFactArgs(BaseModel):
    model_config = ConfigDict(extra="allow")


class AssertArgs(_Args):
    that: list[str] | str
    msg: str = ""


class PauseArgs(_Args):
    prompt: str = ""


class PodsHealthyArgs(_Args):
    namespace: str
    min_ready: int = 1


class ObjectReadyArgs(_Args):
    kind: str
    name: str
    namespace: str | None = None


CATALOG = ModuleCatalog(
    actions={
        "k8s_apply": ApplyArgs,
        "k8s_label": LabelArgs,
        "rollout_restart": RestartArgs,
        "set_fact": SetFactArgs,
        "assert": AssertArgs,
        "pause": PauseArgs,
    },
    checks={"pods_healthy": PodsHealthyArgs, "object_ready": ObjectReadyArgs},
    conditions={"assert": ("that",)},
    template_args={"k8s_apply": ("template",)},
)


@pytest.fixture
def catalog() -> ModuleCatalog:
    return CATALOG
