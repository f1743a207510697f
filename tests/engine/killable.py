"""Run or resume the three-phase playbook on a file-backed cluster, in a process a test may SIGKILL.

Usage: python killable.py STATE_DIR CLUSTER_FILE PLAYBOOK (run | resume RUN_ID | rollback RUN_ID)
Prints the run id and the final status on stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import FileCluster, load  # the script's own directory is on sys.path

from runbook_engine.engine.connect import fixed_connector
from runbook_engine.engine.journal import RunStore
from runbook_engine.engine.run_model import RunOptions
from runbook_engine.engine.runner import Engine


def main(argv: list[str]) -> int:
    state_dir, cluster_file, playbook_file, mode = Path(argv[0]), Path(argv[1]), Path(argv[2]), argv[3]
    cluster = FileCluster(cluster_file)
    store = RunStore(state_dir)
    engine = Engine(store, connect=fixed_connector({"lab": cluster}))
    playbook, inventory = load(playbook_file)
    if mode == "run":
        [result] = engine.run(playbook, inventory, RunOptions())
    elif mode == "rollback":
        result = engine.rollback(argv[4], inventory=inventory)
    else:
        result = engine.resume(argv[4], playbook=playbook, inventory=inventory)
    print(result.run_id, result.status.value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
