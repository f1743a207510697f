"""Keeping Secret data out of everything a person reads, and sealed inside the journal.

Two treatments, on purpose different:

* **Masking** (``mask_secrets``) replaces every value of a Secret's ``data``/``stringData``, every
  credential-like field and every token-like string with ``***<hash>`` (``kube.redact``). Every
  event, console line, diff and report passes through it: nothing a human reads holds Secret data.
* **Sealing** (``Sealer``) encrypts a Secret's ``data``/``stringData`` with Fernet before the
  journal stores it and decrypts it when the journal reads it back. Rollback must restore a Secret
  *exactly*, so its pre-image cannot be masked; sealing keeps the journal file itself free of the
  plaintext, so copying ``runs.db`` into a ticket or a backup does not leak it. The key lives
  beside the database in ``journal.key`` (mode 0600); without it sealed pre-images cannot be read,
  and rollback of those Secrets fails loudly rather than restoring garbage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from runbook_engine.errors import RunStateError
from runbook_engine.kube.redact import redact_object, redact_text

_SECRET_FIELDS = ("data", "stringData")
_SEALED = "__sealed__"


def _is_secret(value: Mapping[str, Any]) -> bool:
    return value.get("kind") == "Secret" and any(f in value for f in _SECRET_FIELDS)


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with every Secret's data, credential-like key and token-like string masked.

    Secrets nested anywhere (a registered result holding a manifest, a diff's before/after) are found.
    """
    if isinstance(value, Mapping):
        redacted = redact_object(value)
        return {k: mask_secrets(v) for k, v in redacted.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class Sealer:
    """Encrypts Secret data inside JSON-like values for storage, and decrypts it on the way back."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._fernet = Fernet(key)

    @classmethod
    def for_directory(cls, directory: Path) -> Sealer:
        """The sealer whose key is ``directory/journal.key``, created (mode 0600) when missing."""
        path = directory / "journal.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    @classmethod
    def ephemeral(cls) -> Sealer:
        return cls(Fernet.generate_key())

    def seal(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {k: self.seal(v) for k, v in value.items()}
            if _is_secret(value):
                for f in _SECRET_FIELDS:
                    if f in value:
                        token = self._fernet.encrypt(_dumps(value[f]).encode()).decode()
                        out[f] = {_SEALED: token}
            return out
        if isinstance(value, list | tuple):
            return [self.seal(v) for v in value]
        return value

    def seal_whole(self, value: Any) -> Any:
        """Encrypt an entire JSON value (extra vars, which often carry tokens); ``unseal`` reverses it."""
        return {_SEALED: self._fernet.encrypt(_dumps(value).encode()).decode()}

    def unseal(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if set(value) == {_SEALED}:
                return _loads(self._decrypt(str(value[_SEALED])))
            return {k: self.unseal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.unseal(v) for v in value]
        return value

    def reseal(self, value: Any, source: Sealer) -> Any:
        """``value`` (sealed by ``source``) with every sealed part re-encrypted under this sealer's key.

        Nothing is unsealed into the result: a journal imported from another machine keeps its Secret
        data encrypted, now under the importing journal's key.
        """
        if isinstance(value, Mapping):
            if set(value) == {_SEALED}:
                return {_SEALED: self._fernet.encrypt(source._decrypt(str(value[_SEALED])).encode()).decode()}
            return {k: self.reseal(v, source) for k, v in value.items()}
        if isinstance(value, list):
            return [self.reseal(v, source) for v in value]
        return value

    def _decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise RunStateError(
                "cannot read a sealed Secret pre-image from the journal",
                hint="journal.key beside runs.db is missing or different from the one that wrote it",
            ) from exc


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _loads(text: str) -> Any:
    return json.loads(text)
