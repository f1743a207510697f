"""The sandbox's state on disk: ``<state>/state.json``, written atomically (temp file, then rename)
shortly after changes settle and when the server stops, so a restart finds the cluster as it was.

Saving is incremental in the costly part: stored objects never change in place, so the store keeps
the JSON of each (``Store.encoded``) and only objects written since the last save are encoded again.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from runbook_engine.files import write_atomic
from runbook_engine.sandbox.store import Obj, Store

STATE_FILE = "state.json"
_COMPACT = (",", ":")
_BUDGET = 10  # seconds between saves per second a save takes


def load_state(state_dir: Path) -> dict[str, Any] | None:
    """The saved store dump, or None when the directory holds no state yet."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class StateSaver:
    """Saves a store's dump after writes, at most once per ``delay`` seconds, and on ``flush``."""

    def __init__(self, store: Store, state_dir: Path, delay: float = 1.0) -> None:
        self.store = store
        self.path = state_dir / STATE_FILE
        self.delay = delay
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()  # guards the timer only
        self._write_lock = threading.Lock()  # one save at a time
        self._saved_rv = -1
        self._cost = 0.0  # seconds the last save took

    def install(self) -> None:
        self.store.listeners.append(self._on_change)

    def uninstall(self) -> None:
        if self._on_change in self.store.listeners:
            self.store.listeners.remove(self._on_change)
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def flush(self) -> None:
        """Write the current state now (if anything changed since the last save)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        # Never hold ``_lock`` while taking the store's lock: writers call ``_on_change`` under theirs.
        with self._write_lock:
            if self.store.resource_version == self._saved_rv and self.path.exists():
                return
            started = time.monotonic()
            rv, data = self._encode()
            write_atomic(self.path, data)
            self._saved_rv = rv
            self._cost = time.monotonic() - started

    def _encode(self) -> tuple[int, bytes]:
        """The store's dump as JSON, re-encoding only the objects written since the last save."""
        rv, objects, logs = self.store.snapshot()
        body = b",".join(self.store.encoded(objects))
        tail = json.dumps(logs, separators=_COMPACT).encode()
        return rv, b'{"resourceVersion":%d,"objects":[%s],"logs":%s}' % (rv, body, tail)

    def _on_change(self, event: str, obj: Obj) -> None:
        with self._lock:
            if self._timer is None:
                # A large store takes a while to save: while it keeps changing (a platform starting),
                # spend at most a tenth of the time saving it.
                self._timer = threading.Timer(max(self.delay, _BUDGET * self._cost), self._save_later)
                self._timer.daemon = True
                self._timer.start()

    def _save_later(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()
