"""Kubernetes protobuf request bodies, for the few simple kinds kubectl sends that way.

``kubectl create namespace|configmap|secret|serviceaccount`` post protobuf
(``application/vnd.kubernetes.protobuf``: the ``k8s\\0`` magic, then a ``runtime.Unknown`` holding
the type and the encoded object). This decodes those kinds' fields into the JSON form; any other
kind is answered 415, and clients that send JSON or YAML (every ``-f`` file) are unaffected.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from runbook_engine.sandbox.api.status import ApiError, Reason

Obj = dict[str, Any]
MAGIC = b"k8s\x00"
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


class _Malformed(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(buf):
            raise _Malformed("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` pairs of one message: ints for varints, bytes for everything else."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == _VARINT:
            value, i = _varint(buf, i)
            yield key >> 3, value
            continue
        size = {_FIXED64: 8, _FIXED32: 4}.get(wire)
        if size is None:
            if wire != _BYTES:
                raise _Malformed(f"unsupported wire type {wire}")
            size, i = _varint(buf, i)
        if i + size > len(buf):
            raise _Malformed("truncated field")
        yield key >> 3, buf[i:i + size]
        i += size


def _bytes(value: int | bytes) -> bytes:
    if isinstance(value, int):
        raise _Malformed("expected a length-delimited field")
    return value


def _text(value: int | bytes) -> str:
    return _bytes(value).decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    parts = dict(_fields(_bytes(value)))
    return _text(parts.get(1, b"")), _bytes(parts.get(2, b""))


def _metadata(buf: bytes) -> Obj:
    meta: Obj = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for number, value in _fields(buf):
        if number in names:
            meta[names[number]] = _text(value)
        elif number in (11, 12):
            key, raw = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = raw.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _put_map(obj: Obj, field: str, value: int | bytes, encode: Callable[[bytes], str]) -> None:
    key, raw = _entry(value)
    obj.setdefault(field, {})[key] = encode(raw)


def _as_text(raw: bytes) -> str:
    return raw.decode()


def _as_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _object(kind: str, buf: bytes) -> Obj:
    obj: Obj = {}
    maps = {
        "ConfigMap": {2: ("data", _as_text), 3: ("binaryData", _as_base64)},
        "Secret": {2: ("data", _as_base64), 4: ("stringData", _as_text)},
    }.get(kind, {})
    for number, value in _fields(buf):
        if number == 1:
            obj["metadata"] = _metadata(_bytes(value))
        elif number in maps:
            field, encode = maps[number]
            _put_map(obj, field, value, encode)
        elif kind == "Secret" and number == 3:
            obj["type"] = _text(value)
        elif (kind, number) in (("ConfigMap", 4), ("Secret", 5)):
            obj["immutable"] = bool(value)
    return obj


SUPPORTED = frozenset({"Namespace", "ConfigMap", "Secret", "ServiceAccount"})


def unsupported(detail: str) -> ApiError:
    return ApiError(
        415,
        f"the sandbox decodes protobuf bodies only for {', '.join(sorted(SUPPORTED))} ({detail}); send JSON or "
        "YAML instead, e.g. `kubectl create -f` or `kubectl apply -f`",
        Reason.UNSUPPORTED_MEDIA_TYPE,
    )


def decode_object(body: bytes) -> Obj:
    """The JSON form of a protobuf-encoded core object (see the module docstring)."""
    if not body.startswith(MAGIC):
        raise unsupported("the body lacks the k8s protobuf header")
    try:
        unknown = dict(_fields(body[len(MAGIC):]))
        type_meta = dict(_fields(_bytes(unknown.get(1, b""))))
        api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
        if api_version != "v1" or kind not in SUPPORTED:
            raise unsupported(f"got {kind or 'an unknown kind'} {api_version}")
        return {"apiVersion": api_version, "kind": kind, **_object(kind, _bytes(unknown.get(2, b"")))}
    except (_Malformed, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the protobuf body is malformed: {exc}", Reason.BAD_REQUEST) from exc
