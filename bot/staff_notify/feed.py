"""The feed behind every staff notifier: ticket events read from a stored
cursor, handed to the notifier in order, the cursor moved past what it posted.

Delivery is at least once and in order: the cursor moves only after a post
succeeded, so a restart resumes where the last post ended (a crash between a
post and the cursor write repeats that one post). With several server
processes on one database a lease (`StoreLease`, renewed while the feed waits)
lets one of them post; the cursor is only moved by the lease's holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.channels.outbox import StoreLease
from flows.store import Store, Ticket, TicketEvent, TicketNotFoundError

log = logging.getLogger("tongxin.staff_notify")

# Event actions staff are told about.
CREATED, OVERDUE, HANDOFF = "created", "overdue", "handoff"
NOTICE_ACTIONS = frozenset({CREATED, OVERDUE, HANDOFF})
LEASE_TTL_S = 15.0


@dataclass(frozen=True)
class StaffNotice:
    event: TicketEvent
    ticket: Ticket | None  # None: the ticket is gone

    @property
    def what(self) -> str:
        """created, overdue or handoff (a new ticket for a person is a handoff)."""
        ticket = self.ticket
        if self.event.action == CREATED and ticket is not None and ticket.kind == "human_handoff":
            return HANDOFF
        return self.event.action


@dataclass(frozen=True)
class Posted:
    """How a post went: the first `count` notices are done (posted, or given up
    for good); wait `wait_s` before the next post (rate limits, outages)."""

    count: int
    wait_s: float = 0.0


class StaffNotifier(Protocol):
    name: str  # names the cursor and lease keys: "wecom", "telegram"
    actions: frozenset[str]  # event actions it posts
    batch: int  # events handed to one post() at most

    async def post(self, notices: Sequence[StaffNotice]) -> Posted: ...


def cursor_key(name: str) -> str:
    return f"staff_notify:{name}:cursor"


def read_cursor(store: Store, key: str) -> int:
    """The last event already posted. On the very first start it is the newest
    event: a new group gets new tickets, not the whole history."""
    with store.transaction():
        raw = store.kv_get(key)
        if raw is not None and raw.isdigit():
            return int(raw)
        cursor = store.last_event_id()
        store.kv_set(key, str(cursor))
        return cursor


class NoticeFeed:
    def __init__(
        self,
        store: Store,
        notifier: StaffNotifier,
        *,
        lease: StoreLease,
        cursor: str | None = None,
        interval_s: float = 2.0,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.lease = lease
        self.cursor_key = cursor or cursor_key(notifier.name)
        self.interval_s = interval_s

    @property
    def name(self) -> str:
        return self.notifier.name

    def start_cursor(self) -> int:
        """Call before the first ticket the feed must not miss can be created."""
        return read_cursor(self.store, self.cursor_key)

    def _due(self) -> list[StaffNotice] | None:
        """The next events after the cursor, or None while another process holds the lease."""
        if not self.lease.hold():
            return None
        cursor = read_cursor(self.store, self.cursor_key)
        events = self.store.events_with_actions_after(
            cursor, sorted(self.notifier.actions), limit=self.notifier.batch
        )
        notices = []
        for event in events:
            try:
                ticket: Ticket | None = self.store.get_ticket(event.ticket_id)
            except TicketNotFoundError:
                ticket = None
            notices.append(StaffNotice(event, ticket))
        return notices

    def _advance(self, event_id: int) -> bool:
        """Move the cursor to `event_id` if this process still holds the lease."""
        with self.store.transaction():
            if self.store.kv_get(self.lease.key) != self.lease.owner:
                return False
            self.store.kv_set(self.cursor_key, str(event_id))
            return True

    async def pass_once(self) -> float:
        """Post what is due; returns how long to wait before the next pass."""
        notices = await asyncio.to_thread(self._due)
        if not notices:
            return self.interval_s
        posted = await self.notifier.post(notices)
        if posted.count:
            last = notices[min(posted.count, len(notices)) - 1].event.id
            if not await asyncio.to_thread(self._advance, last):
                log.warning("%s: lease lost after a post; another process goes on", self.name)
                return self.interval_s
        if posted.wait_s:
            return max(self.interval_s, posted.wait_s)
        more = posted.count == len(notices) == self.notifier.batch
        return 0.0 if more else self.interval_s

    async def run(self, wake: asyncio.Event) -> None:
        """Post until cancelled; `wake` starts a pass at once (a ticket was created).
        The lease is renewed while waiting, so a long rate-limit pause keeps it."""
        while True:
            try:
                pause = await self.pass_once()
            except Exception:
                log.exception("%s: posting staff notices failed", self.notifier.name)
                pause = max(self.interval_s, 10.0)
            wake.clear()
            await self._wait(wake, pause)

    async def _wait(self, wake: asyncio.Event, pause: float) -> None:
        if pause <= self.interval_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=pause)
            return
        # A pause the notifier asked for (rate limit, outage): new tickets wait
        # for it too; the lease is kept meanwhile.
        loop = asyncio.get_running_loop()
        until = loop.time() + pause
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, self.lease.ttl_s / 3))
            try:
                await asyncio.to_thread(self.lease.renew)
            except Exception as exc:  # the next pass takes it again
                log.warning("%s: lease not renewed: %s", self.notifier.name, exc)
