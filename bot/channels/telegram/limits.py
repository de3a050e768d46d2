"""Telegram's flood limits and per-chat ordering for python-telegram-bot.

`FloodLimiter` plugs into `ApplicationBuilder.rate_limiter`: at most
`overall_per_s` bulk messages a second (outbox notifications, staff posts:
callers pass `rate_limit_args=True`), at most `group_per_min` messages a minute
into any one group, and after a 429 the requests to that chat (all requests,
when the 429 names no chat) wait out `retry_after` before they are retried: one
user who floods the bot must not stall everyone else's replies. Replies to a
user who just wrote are not counted against the bulk quota: Telegram's 30/s
figure is for broadcasts, and throttling conversation replies to it would
stall every chat behind one busy minute.

`PerChatUpdateProcessor` lets different chats run concurrently while the
updates of one member in one chat are handled strictly one after another, so
a form never sees its answers out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger("tongxin.telegram")

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


@dataclass(frozen=True)
class TelegramLimits:
    """Telegram's published limits; tests and benches may shrink or raise them."""

    overall_per_s: float = 30.0  # bulk messages (notifications) per second, whole bot
    group_per_min: float = 20.0  # messages per minute into one group
    max_retries: int = 2  # retries of a request answered with 429
    max_concurrent_updates: int = 256
    connection_pool_size: int = 64  # HTTP connections to the Bot API
    # Requests on the wire at once. httpcore scans its queue against every
    # connection whenever a request starts or ends, so 100 replies let in at
    # once cost more event-loop time than sending them (bench: 3.7 ms of CPU
    # per update at 32, 3.0-3.3 at 8). With a real round trip of 100 ms this
    # still allows ~80 messages/s, well above Telegram's 30/s.
    max_in_flight: int = 8


def retry_after_seconds(exc: RetryAfter) -> float:
    """`retry_after` in seconds, whichever type this PTB version returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class SlidingWindow:
    """At most `max_events` acquisitions in any `period` seconds; waiters are served in order."""

    def __init__(
        self, max_events: float, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_events = max(1, int(max_events))
        self.period = period
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    def idle(self) -> bool:
        """True when nobody waits and the window holds no recent event."""
        now = self._clock()
        return not self._lock.locked() and all(now - t >= self.period for t in self._times)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._times and now - self._times[0] >= self.period:
                    self._times.popleft()
                if len(self._times) < self.max_events:
                    self._times.append(now)
                    return
                await asyncio.sleep(self.period - (now - self._times[0]))


def _group_key(chat_id: object) -> int | str | None:
    """Groups and channels have negative ids (or an @username); users positive ones."""
    if isinstance(chat_id, str):
        try:
            chat_id = int(chat_id)
        except ValueError:
            return chat_id
    if isinstance(chat_id, int) and chat_id < 0:
        return chat_id
    return None


def _sends_message(endpoint: str) -> bool:
    return endpoint.startswith("send") or endpoint in ("copyMessage", "forwardMessage")


class FloodLimiter(BaseRateLimiter[bool]):
    """`rate_limit_args=True` marks a bulk message that counts against the overall quota."""

    # A pruned group window is recreated on demand; this only bounds memory.
    MAX_GROUP_WINDOWS = 1024

    def __init__(
        self, limits: TelegramLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or TelegramLimits()
        self._clock = clock
        self._overall = (
            SlidingWindow(self.limits.overall_per_s, 1.0, clock)
            if self.limits.overall_per_s > 0
            else None
        )
        self._groups: dict[int | str, SlidingWindow] = {}
        self._paused_until = 0.0
        self._chat_paused_until: dict[object, float] = {}
        self._in_flight = asyncio.Semaphore(max(1, self.limits.max_in_flight))

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def _group_window(self, key: int | str) -> SlidingWindow:
        window = self._groups.get(key)
        if window is None:
            if len(self._groups) >= self.MAX_GROUP_WINDOWS:
                for old in [k for k, w in self._groups.items() if w.idle()]:
                    del self._groups[old]
            window = SlidingWindow(self.limits.group_per_min, 60.0, self._clock)
            self._groups[key] = window
        return window

    async def _wait_pause(self, chat: object) -> None:
        while True:
            until = max(self._paused_until, self._chat_paused_until.get(chat, 0.0))
            left = until - self._clock()
            if left <= 0:
                return
            await asyncio.sleep(left)

    def _pause(self, chat: object, seconds: float) -> None:
        until = self._clock() + seconds + 0.1
        if chat is None:
            self._paused_until = max(self._paused_until, until)
            return
        if len(self._chat_paused_until) >= self.MAX_GROUP_WINDOWS:
            now = self._clock()
            for old in [c for c, t in self._chat_paused_until.items() if t <= now]:
                del self._chat_paused_until[old]
        self._chat_paused_until[chat] = max(self._chat_paused_until.get(chat, 0.0), until)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: bool | None,
    ) -> JSONResult:
        group = _group_key(data.get("chat_id"))
        chat = data.get("chat_id")
        for attempt in range(self.limits.max_retries + 1):
            await self._wait_pause(chat)
            if group is not None and _sends_message(endpoint) and self.limits.group_per_min > 0:
                await self._group_window(group).acquire()
            if rate_limit_args and self._overall is not None:
                await self._overall.acquire()
            try:
                async with self._in_flight:
                    return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                scope = "all requests" if chat is None else f"chat {chat}"
                log.warning("telegram 429 on %s: pausing %s for %.1f s", endpoint, scope, wait)
                self._pause(chat, wait)
                if attempt >= self.limits.max_retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def ordering_key(update: object) -> tuple[int, int] | None:
    """Updates with the same key (one member in one chat) are handled in order."""
    if not isinstance(update, Update):
        return None
    chat, user = update.effective_chat, update.effective_user
    if chat is None and user is None:
        return None
    return (chat.id if chat else 0, user.id if user else 0)


class _Slot:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._slots: dict[tuple[int, int], _Slot] = {}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = ordering_key(update)
        if key is None:
            await coroutine
            return
        slot = self._slots.setdefault(key, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                await coroutine
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(key, None)
            if asyncio.iscoroutine(coroutine):
                # Cancelled while waiting for the lock: close it so that no
                # "never awaited" warning follows the shutdown.
                with contextlib.suppress(RuntimeError):
                    coroutine.close()
