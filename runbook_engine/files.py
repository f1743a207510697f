"""Writing files so that a crash never leaves a torn one: the project's one atomic writer.

A leaf module (it imports nothing from the package), so every layer and the sandbox can use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a synced temporary file and a rename; the file is mode 0600.

    Readers see the old content or the new, never part of either; the file is readable by its owner
    only, because what the project writes (journal keys, tokens, state, reports) may be sensitive.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
