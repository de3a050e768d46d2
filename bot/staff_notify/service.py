"""A staff notifier run by `tongxin serve` beside the channels: its feed as a
background task, and its state for /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from starlette.routing import BaseRoute

from bot.channels.outbox import StoreLease
from bot.staff_notify.feed import LEASE_TTL_S, NoticeFeed
from bot.staff_notify.wecom import WeComNotifier
from flows.store import Store

log = logging.getLogger("tongxin.staff_notify")


class StaffNoticeService:
    """`ChannelService` with no routes: posts staff notices to one WeCom group."""

    def __init__(self, store: Store, notifier: WeComNotifier, *, interval_s: float = 2.0) -> None:
        self.name = notifier.name
        self.notifier = notifier
        lease = StoreLease(
            store, f"staff_notify:{notifier.name}:lease", ttl_s=LEASE_TTL_S, owner=uuid.uuid4().hex
        )
        self.feed = NoticeFeed(store, notifier, lease=lease, interval_s=interval_s)
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[BaseRoute]:
        return []

    async def start(self) -> None:
        # httpx logs request URLs at INFO, and the webhook URL carries the robot's key.
        httpx_log = logging.getLogger("httpx")
        if httpx_log.getEffectiveLevel() < logging.WARNING:
            httpx_log.setLevel(logging.WARNING)
        # Before start() returns, so that no ticket created from now on is missed.
        await asyncio.to_thread(self.feed.start_cursor)
        self._task = asyncio.create_task(self.feed.run(self.wake), name=f"{self.name}-notices")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.to_thread(self.feed.lease.release)
        except Exception as exc:  # it expires by itself
            log.warning("%s: lease not released: %s", self.name, exc)
        await self.notifier.close()

    def health(self) -> dict[str, Any]:
        state = self.notifier.health()
        # A failing post is retried and loses nothing: shown, but not a failed server.
        return {"ok": True, "running": self._task is not None and not self._task.done(), **state}
