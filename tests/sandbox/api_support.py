"""Helpers for the sandbox API tests: a kubectl runner and minimal manifests."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Kubectl:
    """Runs kubectl against one sandbox, with its own discovery cache."""

    kubeconfig: Path
    cache: Path

    def run(self, *args: str, stdin: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}", *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 30.0) -> str:
        out = self.run(*args, stdin=stdin, timeout=timeout)
        assert out.returncode == 0, f"kubectl {' '.join(args)} failed:\n{out.stdout}{out.stderr}"
        return out.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}", *args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifest(api_version: str, kind: str, name: str, namespace: str | None = "default", **body: Any) -> dict[str, Any]:
    """A minimal object of any kind."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **body}


def raw(server: Any, method: str, path: str, body: Any = None, content_type: str = "application/json",
        token: str | None = None) -> tuple[int, Any]:
    """One HTTPS request to a sandbox, trusting its CA; returns the status and the decoded JSON body."""
    context = ssl.create_default_context(cafile=str(server.state_dir / "tls" / "ca.crt"))
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(server.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {server.token if token is None else token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
