"""``runbook sandbox``: run the local Kubernetes API emulator with mesh behaviour.

- ``up --scenario FILE [--port N] [--state DIR] [--detach]``: serve it (in the foreground until
  Ctrl-C / SIGTERM, or in the background with ``--detach``, which writes ``<state>/sandbox.pid``);
  ``<state>/kubeconfig`` points kubectl and the engine at it. State persists in the directory.
- ``down --state DIR``: stop a detached sandbox; its state is saved first.
- ``reset --state DIR``: wipe the state (the next ``up`` seeds the scenario again).
- ``generate``: write a large synthetic scenario.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from runbook_engine.cli.sandbox_generate import generate
from runbook_engine.errors import RunbookError, UserInputError
from runbook_engine.sandbox.app import build_sandbox

DEFAULT_STATE = Path(".runbook/sandbox/default")
PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
_START_TIMEOUT = 120.0  # seconds a detached sandbox may take to seed a large scenario
_STOP_TIMEOUT = 30.0
#: ``runbook`` as a command line, wherever this interpreter is (the console script may not be on PATH).
_RUNBOOK = (sys.executable, "-c", "from runbook_engine.cli.main import main; main()")

_state_option = click.option(
    "--state", "state", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE,
    show_default=True, help="Directory holding the sandbox's state, certificates and kubeconfig.",
)


def _running_pid(state: Path) -> int | None:
    """The pid of the detached sandbox for ``state``, if it is still alive."""
    try:
        pid = int((state / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


@click.group("sandbox")
def sandbox() -> None:
    """A local Kubernetes API server with mesh behaviour, for rehearsals and demos."""


@sandbox.command("up")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scenario to seed a new state from (ignored when the state directory already has state).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@_state_option
@click.option("--detach", is_flag=True, help="Run in the background; stop it with `runbook sandbox down`.")
def up(scenario: Path | None, port: int, state: Path, detach: bool) -> None:
    """Start the sandbox API server."""
    if _running_pid(state) not in (None, os.getpid()):  # a detached child finds its own pid there
        raise UserInputError(f"a sandbox is already running for {state}",
                             hint=f"stop it with `runbook sandbox down --state {state}`")
    if detach:
        _detach(scenario, port, state)
        return
    _foreground(scenario, port, state)


def _foreground(scenario: Path | None, port: int, state: Path) -> None:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        server = build_sandbox(state, scenario, port).start()
    except OSError as exc:
        raise UserInputError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
                             hint="choose another --port, or 0 for any free port") from exc
    click.echo(f"sandbox API server at {server.url}")
    click.echo(f"kubeconfig: {server.kubeconfig}  (export KUBECONFIG={server.kubeconfig.resolve()})")
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    click.echo(f"sandbox stopped; state saved in {state}")


def _detach(scenario: Path | None, port: int, state: Path) -> None:
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    kubeconfig = state / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    cmd = [*_RUNBOOK, "sandbox", "up", "--port", str(port), "--state", str(state)]
    if scenario is not None:
        cmd += ["--scenario", str(scenario)]
    with open(state / LOG_FILE, "ab") as log:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    (state / PID_FILE).write_text(f"{child.pid}\n")
    deadline = time.monotonic() + _START_TIMEOUT
    while not kubeconfig.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            (state / PID_FILE).unlink(missing_ok=True)
            raise RunbookError("the sandbox did not start", hint=f"see {state / LOG_FILE}")
        time.sleep(0.1)
    click.echo(f"sandbox running in the background (pid {child.pid})")
    click.echo(f"kubeconfig: {kubeconfig}  (export KUBECONFIG={kubeconfig.resolve()})")


@sandbox.command("down")
@_state_option
def down(state: Path) -> None:
    """Stop a detached sandbox (its state is saved)."""
    pid = _running_pid(state)
    if pid is None:
        (state / PID_FILE).unlink(missing_ok=True)
        raise UserInputError(f"no sandbox is running for {state}", hint="start one with `runbook sandbox up --detach`")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while _running_pid(state) is not None:
        if time.monotonic() > deadline:
            raise RunbookError(f"the sandbox (pid {pid}) did not stop within {_STOP_TIMEOUT:.0f}s",
                               hint=f"see {state / LOG_FILE}")
        time.sleep(0.1)
    (state / PID_FILE).unlink(missing_ok=True)
    click.echo(f"sandbox stopped; state saved in {state}")


@sandbox.command("reset")
@_state_option
def reset(state: Path) -> None:
    """Wipe the sandbox's state; the next `up` starts from its scenario again."""
    if _running_pid(state) is not None:
        raise UserInputError(f"the sandbox for {state} is running",
                             hint=f"stop it first with `runbook sandbox down --state {state}`")
    if state.exists():
        shutil.rmtree(state)
    click.echo(f"sandbox state in {state} wiped")


sandbox.add_command(generate)
