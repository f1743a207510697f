"""Keeping secrets out of logs, journals, diffs and reports.

``redact_object`` masks a manifest's sensitive values: every value of a Secret's ``data`` and
``stringData`` (and its ``last-applied-configuration`` annotation, which repeats them), and any
string under a credential-like key (``token``, ``password``, ``client-key-data``, …) anywhere in
the object, as in kubeconfigs. ``redact_text`` masks known secret strings in free text, plus
bearer tokens, JWTs and PEM private keys wherever they appear.

A masked value reads ``***`` followed by a short keyed hash (``***a1b2c3d4``): equal values mask
equally within one process, so a diff still shows that a value changed, but the hash key is random
per process, so the mask cannot be reversed by hashing guesses.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from secrets import token_bytes
from typing import Any

MASK = "***"

#: Keys whose string values are credentials wherever they appear (compared case-insensitively).
SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "token", "password", "passwd", "client-key-data", "client-certificate-data", "client-key",
        "id-token", "refresh-token", "access-token", "client-secret", "bearer-token", "private-key",
        "privatekey", "apikey", "api-key", "secret-key",
    }
)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

_KEY = token_bytes(32)

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
)


def mask(value: object) -> str:
    """``***`` plus a keyed, per-process hash of the value: changes stay visible, values do not."""
    digest = hmac.new(_KEY, str(value).encode(), hashlib.sha256).hexdigest()[:8]
    return f"{MASK}{digest}"


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion", "v1")) == "v1"


def redact_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` with every sensitive value masked (see module docstring)."""
    out: dict[str, Any] = _redact_keys(copy.deepcopy(dict(obj)))
    _redact_secret(out)
    for item in out.get("items") or []:  # a List of objects
        if isinstance(item, dict):
            _redact_secret(item)
    return out


def _redact_secret(obj: dict[str, Any]) -> None:
    if not is_secret(obj):
        return
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            obj[field] = {k: mask(v) for k, v in obj[field].items()}
    annotations = (obj.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = mask(annotations[LAST_APPLIED])


def _redact_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: mask(v) if isinstance(v, str) and str(k).lower() in SENSITIVE_KEYS else _redact_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_keys(v) for v in value]
    return value


def secret_values(obj: Mapping[str, Any]) -> set[str]:
    """Every sensitive string in ``obj``: a Secret's values (encoded and decoded) and credential keys."""
    found: set[str] = set()
    if is_secret(obj):
        for value in (obj.get("data") or {}).values():
            found.add(str(value))
            found |= _decoded(str(value))
        found |= {str(v) for v in (obj.get("stringData") or {}).values()}
    found |= _sensitive_strings(obj)
    return {v for v in found if v}


def _decoded(value: str) -> set[str]:
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return set()
    return {text, text.strip()}


def _sensitive_strings(value: Any) -> set[str]:
    if isinstance(value, dict):
        out: set[str] = set()
        for k, v in value.items():
            out |= {v} if isinstance(v, str) and str(k).lower() in SENSITIVE_KEYS else _sensitive_strings(v)
        return out
    if isinstance(value, list):
        return set().union(*(_sensitive_strings(v) for v in value)) if value else set()
    return set()


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret string, bearer token, JWT and PEM private key masked."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mask(secret))
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: mask(m.group(0)), text)
    return text
