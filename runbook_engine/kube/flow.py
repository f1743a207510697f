"""Flow: one traffic edge, with the same schema in the inventory, sandbox scenarios, the planner and reports.

``from``: ``<ns>/<workload>`` | ``external:<name>`` | ``kubelet`` | ``kube-apiserver``;
``to``: ``<ns>/<service>:<port>`` (or ``external:<host>:<port>`` for egress to an external host);
``protocol``: ``http | grpc | tcp | server-first``; optional ``expect`` (an HTTP status or outcome).
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Protocol(StrEnum):
    HTTP = "http"
    GRPC = "grpc"
    TCP = "tcp"
    SERVER_FIRST = "server-first"


class Outcome(StrEnum):
    """What a caller observes; the planner, the sandbox and the checks all speak these."""

    OK = "ok"
    RESET = "reset"
    DENIED_403 = "denied_403"
    TLS_ERROR = "tls_error"
    HANG = "hang"


_SOURCE = re.compile(r"^(external:[\w.\-]+|kubelet|kube-apiserver|[a-z0-9][a-z0-9\-]*/[a-z0-9][\w.\-]*)$")
_DEST = re.compile(r"^(external:)?[a-z0-9][\w.\-]*(/[a-z0-9][\w.\-]*)?:\d{1,5}$")


class Flow(BaseModel):
    """A traffic edge: who calls what, over which protocol, and what the caller should observe."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    source: str = Field(alias="from")
    to: str
    protocol: Protocol = Protocol.HTTP
    expect: str | None = None
    name: str | None = None
    path: str = "/"
    method: str = "GET"

    @field_validator("source")
    @classmethod
    def _check_source(cls, v: str) -> str:
        if not _SOURCE.match(v):
            raise ValueError("from must be <ns>/<workload>, external:<name>, kubelet or kube-apiserver")
        return v

    @field_validator("to")
    @classmethod
    def _check_to(cls, v: str) -> str:
        if not _DEST.match(v):
            raise ValueError("to must be <ns>/<service>:<port> or external:<host>:<port>")
        return v

    @property
    def is_external_destination(self) -> bool:
        return self.to.startswith("external:")

    @property
    def source_namespace(self) -> str | None:
        return self.source.split("/", 1)[0] if "/" in self.source else None

    @property
    def source_workload(self) -> str | None:
        return self.source.split("/", 1)[1] if "/" in self.source else None

    @property
    def dest_host(self) -> str:
        """``<ns>/<service>`` or the external host name."""
        target = self.to.removeprefix("external:")
        return target.rsplit(":", 1)[0]

    @property
    def dest_namespace(self) -> str | None:
        return None if self.is_external_destination else self.dest_host.split("/", 1)[0]

    @property
    def dest_service(self) -> str:
        return self.dest_host.split("/", 1)[-1]

    @property
    def port(self) -> int:
        return int(self.to.rsplit(":", 1)[1])

    @property
    def id(self) -> str:
        """Stable identifier used by ``--accept-risk`` and reports: ``from -> to``."""
        return self.name or f"{self.source} -> {self.to}"

    def __str__(self) -> str:
        return f"{self.id} ({self.protocol.value})"
