"""The outbox worker: queued messages (late replies, ticket updates) go out
through the customer-service message API.

WeChat's answer decides what happens to a row:
- sent: marked sent;
- outside the 48-hour window (45015) for a row about a ticket: sent again at once
  as a template message (`bot.channels.wechat.templates`); also straight away
  when the user's last message is known to be older than 48 hours;
- a quota used up (45009, 45047), an unknown template, no template configured or
  another refusal: failed for good, the reason kept on the row for staff
  (`tongxin outbox list`, the workspace);
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
from typing import Any, Protocol

from bot.channels.outbox import Backoff, InFlight, StoreLease, mark_repeat
from bot.channels.wechat.render import MAX_TEXT_BYTES, split_text
from bot.channels.wechat.templates import TemplateNotConfiguredError, TicketTemplates
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
    40037: "unknown template id (check data/wechat_templates.yml)",
    47003: "template fields do not match the template (check data/wechat_templates.yml)",
    43100: "template message sent too often to this user",
}
OUTSIDE_WINDOW = 45015
# Retried later: system busy, the per-minute quota, a token refused even after a refresh.
RETRY_ERRCODES = frozenset({-1, 45011, 40001, 40014, 42001})


class Sender(Protocol):
    def send_text(self, openid: str, text: str) -> None: ...

    def send_template(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> None: ...


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
        templates: TicketTemplates | None = None,
    ) -> None:
        """`templates`: how updates about a ticket reach a user outside the
        48-hour window (None: they fail with 45015 for staff to see)."""
        self.store = store
        self.sender = sender
        self.templates = templates
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
        templated = self.templates is not None and item.ticket_id is not None
        text = item.text
        repeat = self.in_flight.begin(item.id)
        if repeat and self.repeat_notice:
            text = mark_repeat(text, self.repeat_notice)
        try:
            if templated and self._window_closed(item):
                return self._deliver_template(item, report, why="last message over 48 h ago")
            for part in split_text(text, limit=MAX_TEXT_BYTES):
                self.sender.send_text(item.user_id, part)
        except WeChatApiError as exc:
            # WeChat answered: this attempt did not go out (an earlier one still may have).
            if not repeat or exc.errcode not in RETRY_ERRCODES:
                self.in_flight.end(item.id)
            if exc.errcode == OUTSIDE_WINDOW and templated:
                return self._deliver_template(item, report, why="45015")
            return self._refused(item, exc, report)
        except WeChatNetworkError as exc:
            # No answer: it may have arrived, so the mark stays for the retry.
            self._retry(item, f"network: {exc}", report)
            return False
        with self.store.transaction():
            self.store.mark_outbox_sent(item.id)
            self.in_flight.end(item.id)
        report.sent.append(item.id)
        return True

    def _window_closed(self, item: OutboxItem) -> bool:
        assert self.templates is not None
        return self.templates.window_closed(item)

    def _deliver_template(self, item: OutboxItem, report: DeliveryReport, *, why: str) -> bool:
        """The row as a template message (the customer-service window is closed)."""
        assert self.templates is not None
        try:
            template_id = self.templates.send(self.sender, item)
        except TemplateNotConfiguredError as exc:
            self.in_flight.end(item.id)
            error = f"{OUTSIDE_WINDOW} {FINAL_ERRORS[OUTSIDE_WINDOW]}; {exc}"
            self.store.mark_outbox_failed(item.id, error[:300], retry_in_s=None)
            report.failed.append(item.id)
            log.warning("outbox %s not delivered: outside the window, no template", item.id)
            return True
        except WeChatApiError as exc:
            if exc.errcode not in RETRY_ERRCODES:
                self.in_flight.end(item.id)
            return self._refused(item, exc, report, prefix="template message: ")
        except WeChatNetworkError as exc:
            self._retry(item, f"network (template message): {exc}", report)
            return False
        with self.store.transaction():
            self.store.mark_outbox_sent(item.id)
            self.in_flight.end(item.id)
        report.sent.append(item.id)
        log.info("outbox %s sent as template %s (%s)", item.id, template_id, why)
        return True

    def _refused(
        self, item: OutboxItem, exc: WeChatApiError, report: DeliveryReport, *, prefix: str = ""
    ) -> bool:
        """WeChat said no: retried for a passing reason, else failed for staff to see."""
        if exc.errcode in RETRY_ERRCODES:
            self._retry(item, f"{prefix}{exc.errcode} {exc.errmsg}", report)
            return False
        hint = FINAL_ERRORS.get(exc.errcode)
        error = f"{prefix}{exc.errcode} {hint}: {exc.errmsg}" if hint else f"{prefix}{exc}"
        self.store.mark_outbox_failed(item.id, error[:300], retry_in_s=None)
        report.failed.append(item.id)
        log.warning("outbox %s not delivered: %s%s", item.id, prefix, exc.errcode)
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
