"""The outbox worker: queued messages (late replies, ticket updates) go out
through the customer-service message API.

WeChat's answer decides what happens to a row:
- sent: marked sent;
- outside the 48-hour window (45015), a quota used up (45009, 45047) or another
  refusal: failed for good, the error kept on the row for `tongxin outbox list`;
- network trouble, HTTP errors, "system busy" (-1), the minute quota (45011):
  retried later with exponential back-off, given up after `max_attempts`.

Several processes may run a worker on the same database; a lease in the store's
key/value table (`bot.channels.outbox.StoreLease`), renewed before every row,
lets only one of them deliver at a time, so no row goes twice. A process killed
mid-send leaves the row marked in flight (`bot.channels.outbox.InFlight`): the
next worker sends it again, headed by a note that it may be a repeat.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from bot.channels.outbox import Backoff, InFlight, StoreLease, mark_repeat
from bot.channels.wechat.render import MAX_TEXT_BYTES, split_text
from bot.channels.wechat.translate import CHANNEL
from bot.channels.wechat_api import WeChatApiError, WeChatNetworkError
from flows.store import OutboxItem, Store

log = logging.getLogger("tongxin.wechat.outbox")

LEASE_KEY = "wechat:outbox_lease"
# Renewed every pass (2 s) and before every row, so it only has to outlast one
# send (the API timeout is 10 s); after a crash another process takes over
# within this time.
LEASE_S = 12.0

# errcode -> what staff read on the failed row.
FINAL_ERRORS: dict[int, str] = {
    45015: "outside WeChat's 48-hour reply window (the user has not written recently)",
    45047: "customer-service message quota for this user used up",
    45009: "daily API quota used up",
    43004: "the user has unsubscribed",
    40003: "not a valid OpenID for this account",
    48001: "the account may not use the customer-service API",
    45002: "message too long",
}
# Retried later: system busy, the per-minute quota, a token refused even after a refresh.
RETRY_ERRCODES = frozenset({-1, 45011, 40001, 40014, 42001})


class Sender(Protocol):
    def send_text(self, openid: str, text: str) -> None: ...


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        *,
        backoff: Backoff | None = None,
        batch: int = 20,
        lease_s: float = LEASE_S,
        owner: str | None = None,
        repeat_notice: str = "",
    ) -> None:
        self.store = store
        self.sender = sender
        self.backoff = backoff or Backoff()
        self.batch = batch
        self.lease = StoreLease(store, LEASE_KEY, ttl_s=lease_s, owner=owner or uuid.uuid4().hex)
        self.in_flight = InFlight(store, CHANNEL)
        self.repeat_notice = repeat_notice

    # -- one pass (blocking; run it in a thread) --------------------------

    def deliver_due(self) -> DeliveryReport:
        report = DeliveryReport()
        if not self.lease.hold():
            return report
        for item in self.store.due_outbox(CHANNEL, limit=self.batch):
            # Renewed per row: each send may take the API timeout, and a batch
            # must not outlast the lease while another process takes its rows.
            if not self.lease.hold():
                break
            if not self._deliver(item, report):
                break  # WeChat unreachable: the other rows wait for the next pass
        return report

    def release(self) -> None:
        self.lease.release()

    def _deliver(self, item: OutboxItem, report: DeliveryReport) -> bool:
        """Send one row and record the outcome; False when WeChat is unreachable."""
        text = item.text
        repeat = self.in_flight.begin(item.id)
        if repeat and self.repeat_notice:
            text = mark_repeat(text, self.repeat_notice)
        try:
            for part in split_text(text, limit=MAX_TEXT_BYTES):
                self.sender.send_text(item.user_id, part)
        except WeChatApiError as exc:
            # WeChat answered: this attempt did not go out (an earlier one still may have).
            if not repeat or exc.errcode not in RETRY_ERRCODES:
                self.in_flight.end(item.id)
            if exc.errcode in RETRY_ERRCODES:
                self._retry(item, f"{exc.errcode} {exc.errmsg}", report)
                return False
            hint = FINAL_ERRORS.get(exc.errcode)
            error = f"{exc.errcode} {hint}: {exc.errmsg}" if hint else str(exc)
            self.store.mark_outbox_failed(item.id, error[:300], retry_in_s=None)
            report.failed.append(item.id)
            log.warning("outbox %s not delivered: %s", item.id, exc.errcode)
            return True
        except WeChatNetworkError as exc:
            # No answer: it may have arrived, so the mark stays for the retry.
            self._retry(item, f"network: {exc}", report)
            return False
        with self.store.transaction():
            self.store.mark_outbox_sent(item.id)
            self.in_flight.end(item.id)
        report.sent.append(item.id)
        return True

    def _retry(self, item: OutboxItem, error: str, report: DeliveryReport) -> None:
        delay = self.backoff.retry_in(item.attempts)
        if delay is None:
            final = f"gave up after {item.attempts + 1} attempts; last: {error}"
            self.store.mark_outbox_failed(item.id, final[:300], retry_in_s=None)
            report.failed.append(item.id)
            return
        self.store.mark_outbox_failed(item.id, error[:300], retry_in_s=delay)
        report.retrying.append(item.id)
        log.info("outbox %s: %s; retrying in %.0f s", item.id, error, delay)

    # -- the loop ---------------------------------------------------------

    async def run(self, wake: asyncio.Event, stop: asyncio.Event, *, poll_s: float = 2.0) -> None:
        """Deliver until `stop` is set; `wake` starts a pass at once (a reply was queued)."""
        while not stop.is_set():
            wake.clear()
            try:
                report = await asyncio.to_thread(self.deliver_due)
            except Exception:
                log.exception("outbox pass failed")
            else:
                if len(report.sent) + len(report.failed) >= self.batch:
                    continue  # a full batch went out: more may be due, no pause
            waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waiters, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
        try:
            await asyncio.to_thread(self.release)
        except Exception as exc:  # it expires by itself; another process takes over
            log.warning("outbox lease not released: %s", exc)
