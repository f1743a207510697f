"""Watch streams: ``?watch=true`` answered with one JSON event per line, as the real server does.

Without a ``resourceVersion`` (or with ``0``) the stream starts with an ``ADDED`` event for every
matching object, then follows changes; with one, it replays retained changes after it. A revision
older than the retained history gets an ``ERROR`` event carrying a 410 ``Expired`` Status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from runbook_engine.sandbox.api.routing import Query, Route
from runbook_engine.sandbox.api.status import ApiError, bad_request
from runbook_engine.sandbox.store import ResourceVersionTooOld, Store, Subscription

Obj = dict[str, Any]
_POLL = 0.25  # seconds between checks for a closed connection or an expired timeout
_MAX_SECONDS = 1800.0  # the longest a watch stays open, as the API server's request timeout


def _line(event_type: str, obj: Obj) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _since(query: Query) -> int | None:
    raw = query.get("resourceVersion")
    if raw in ("", "0"):
        return None
    if not raw.isdigit():
        raise bad_request(f"invalid resourceVersion {raw!r}")
    return int(raw)


def open_watch(
    store: Store, route: Route, query: Query, match: Callable[[Mapping[str, Any]], bool]
) -> tuple[list[Obj], Subscription | None, ApiError | None]:
    """The initial objects (when starting fresh) and the subscription, taken atomically."""
    since = _since(query)
    with store.lock:
        try:
            sub = store.subscribe(route.info, route.namespace, since)
        except ResourceVersionTooOld as exc:
            return [], None, ApiError(410, str(exc), "Expired")
        initial = [] if since is not None else store.scan(route.info.api_version, route.info.kind, route.namespace)
    return [o for o in initial if match(o)], sub, None


def stream(
    store: Store,
    route: Route,
    query: Query,
    match: Callable[[Mapping[str, Any]], bool],
    closed: Callable[[], bool],
) -> Iterator[bytes]:
    """Encoded events until the client goes away, ``timeoutSeconds`` passes or the server stops."""
    initial, sub, error = open_watch(store, route, query, match)
    if sub is None:
        yield _line("ERROR", (error or ApiError(410, "expired")).body())
        return
    timeout = float(query.integer("timeoutSeconds") or _MAX_SECONDS)
    deadline = time.monotonic() + min(timeout, _MAX_SECONDS)
    try:
        for obj in initial:
            yield _line("ADDED", obj)
        while time.monotonic() < deadline and not closed():
            event = sub.next(timeout=_POLL)
            if sub.closed:
                return
            if event is not None and match(event.object):
                yield _line(event.type, event.object)
    finally:
        sub.close()
