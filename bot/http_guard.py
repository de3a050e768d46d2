"""Limits that keep slow or hostile clients from taking `tongxin serve` down.

uvicorn waits for request headers and bodies forever and accepts connections
until the process runs out of file descriptors (then asyncio logs an
`EMFILE` traceback for every accept). `GuardedHttpProtocol` (uvicorn's
httptools protocol with three limits) closes a connection whose headers are not
complete within `header_timeout_s` or whose body is not complete within
`body_timeout_s`, and holds at most `max_connections` connections: at the cap a
new connection takes the place of the connection that has waited longest for
its headers (a slow client), so a real request still gets in; with none of
those it is closed at once. Nothing of this logs more than a line a minute.

In production a TLS reverse proxy (deploy/nginx.conf) sits in front and
buffers whole requests, so these limits are the second line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("tongxin.http")

# File descriptors kept, beyond those open when the first client connects, for
# outgoing API connections, SQLite's WAL files and the files a turn opens.
FD_RESERVE = 32


class LimitsError(ValueError):
    """A TONGXIN_HTTP_* setting holds a value that cannot be used."""


@dataclass(frozen=True)
class HttpLimits:
    """Defaults (documented in the README): 1,000 connections per process, 10 s
    for the request headers, 20 s for the body (webhook bodies are at most 64 KB)."""

    max_connections: int = 1000
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HttpLimits:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field_name, kind in (
            ("TONGXIN_HTTP_MAX_CONNECTIONS", "max_connections", int),
            ("TONGXIN_HTTP_HEADER_TIMEOUT_S", "header_timeout_s", float),
            ("TONGXIN_HTTP_BODY_TIMEOUT_S", "body_timeout_s", float),
        ):
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                value = kind(raw)
            except ValueError as exc:
                raise LimitsError(f"{name} must be a number, got {raw!r}") from exc
            if not 0 < value < float("inf"):
                raise LimitsError(f"{name} must be above 0, got {raw!r}")
            values[field_name] = value
        return cls(**values)

    def fitted_to_fd_limit(self) -> HttpLimits:
        """`max_connections` lowered to what the open-file limit leaves free
        (call it in the running server: the count starts from the files open now)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self
        try:
            open_now = len(os.listdir("/proc/self/fd"))
        except OSError:  # no /proc: assume a started server's usual count
            open_now = 64
        room = max(16, soft - open_now - FD_RESERVE)
        if self.max_connections <= room:
            return self
        return HttpLimits(room, self.header_timeout_s, self.body_timeout_s)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (each connection is a file);
    returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %s to %s", soft, hard)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


class _Quiet:
    """At most one line per `every_s` for one kind of event, with the count."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def note(self, kind: str, message: str) -> None:
        self._count[kind] = self._count.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) >= self.every_s:
            log.warning("%s (%d in the last minute)", message, self._count[kind])
            self._last[kind] = now
            self._count[kind] = 0


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with connection, header and body limits.
    The limits come from the environment (`HttpLimits.from_env`), read once per
    server and kept on its uvicorn config."""

    def __init__(self, config: Any, server_state: Any, app_state: Any, **kwargs: Any) -> None:
        super().__init__(config, server_state, app_state, **kwargs)
        guard = getattr(config, "_tongxin_guard", None)
        if guard is None:
            guard = (HttpLimits.from_env().fitted_to_fd_limit(), _Quiet())
            config._tongxin_guard = guard
        self._limits: HttpLimits = guard[0]
        self._quiet: _Quiet = guard[1]
        self._timer: asyncio.TimerHandle | None = None
        # monotonic time since when this connection waits for headers; None
        # while a request is being handled or the connection is idle.
        self.waiting_since: float | None = None

    # -- connections ------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections and not self._evict_slowest():
            self._quiet.note("refused", "connection limit reached: new connections refused")
            transport.abort()
            return
        super().connection_made(transport)
        self._wait_for_headers()

    def _evict_slowest(self) -> bool:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpProtocol) and c.waiting_since is not None
        ]
        if not waiting:
            return False
        slowest = min(waiting, key=lambda c: c.waiting_since or 0.0)
        self._quiet.note("evicted", "connection limit reached: slowest header senders closed")
        slowest._drop()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.waiting_since = None
        if self.transport is None:
            return  # refused in connection_made
        super().connection_lost(exc)

    def _drop(self) -> None:
        self._cancel_timer()
        self.waiting_since = None
        self.connections.discard(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    # -- timers -----------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, seconds: float, what: str) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._timed_out, what)

    def _timed_out(self, what: str) -> None:
        self._timer = None
        self._quiet.note(what, f"closed connections that sent their {what} too slowly")
        self._drop()

    def _wait_for_headers(self) -> None:
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()
            self._arm(self._limits.header_timeout_s, "headers")

    # -- parser callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._wait_for_headers()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self.waiting_since = None
        self._arm(self._limits.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.waiting_since = None  # idle: uvicorn's keep-alive timeout applies


class _RepeatFilter(logging.Filter):
    """Lets one record of a kind through per `every_s`; asyncio logs a traceback
    for every failed accept() while the process is out of file descriptors."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = f"{record.name}:{record.msg}"[:200]
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            return False
        self._last[kind] = now
        return True


class _PathOnlyFilter(logging.Filter):
    """uvicorn's access log without query strings: WeChat puts the user's
    OpenID (and the signature) in the callback URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def install_log_filters() -> None:
    """At most one line a minute for each repeated asyncio/uvicorn server
    error, and no query strings in the access log. Call in every server
    process (uvicorn configures logging again in each worker)."""
    for name in ("asyncio", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RepeatFilter) for f in logger.filters):
            logger.addFilter(_RepeatFilter())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _PathOnlyFilter) for f in access.filters):
        access.addFilter(_PathOnlyFilter())
