"""State files: atomic, private, complete, and saving never blocks writers for good."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from runbook_engine.sandbox.persist import StateSaver, load_state
from runbook_engine.sandbox.store import Store


def _cm(i: int) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "default"}}


@pytest.mark.timeout(30)
def test_saving_while_writing_completes_and_captures_every_object(tmp_path: Path) -> None:
    store = Store()
    saver = StateSaver(store, tmp_path, delay=0.0)
    saver.install()
    done = threading.Event()

    def save_repeatedly() -> None:
        while not done.is_set():
            saver.flush()

    savers = [threading.Thread(target=save_repeatedly) for _ in range(2)]
    for thread in savers:
        thread.start()
    for i in range(300):
        store.create(_cm(i))
    done.set()
    for thread in savers:
        thread.join(timeout=10)
    saver.uninstall()
    saver.flush()
    state = load_state(tmp_path)
    assert state is not None and len(state["objects"]) == 300 and state["resourceVersion"] == 300
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name != "state.json"]  # no temp files left behind


def test_a_loaded_dump_restores_objects_logs_and_the_revision(tmp_path: Path) -> None:
    store = Store()
    store.create(_cm(1))
    store.set_pod_log("default", "p", "app", "hello\n")
    saver = StateSaver(store, tmp_path)
    saver.flush()
    restored = Store()
    restored.load(json.loads((tmp_path / "state.json").read_text()))
    assert restored.get("v1", "ConfigMap", "default", "c1") == store.get("v1", "ConfigMap", "default", "c1")
    assert restored.get_pod_log("default", "p", "app") == "hello\n"
    assert restored.create(_cm(2))["metadata"]["resourceVersion"] == "2"
