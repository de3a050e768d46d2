"""The WeCom (企业微信) group robot: staff notices as markdown messages to the
webhook in TONGXIN_WECOM_WEBHOOK_URL.

WeCom lets one robot send 20 messages a minute and answers 45009 beyond that.
Several tickets go into one message (up to WeCom's 4,096 bytes), posts are
spaced evenly over the minute and never more than 20 fall in any 60 seconds;
a 45009 or any other failure pauses the feed with back-off and nothing is
dropped (the feed's cursor only moves past what WeCom accepted). Logs carry
WeCom's error code and ticket ids, never the message (it holds residents' words).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.channels.outbox import Backoff
from bot.staff_notify.feed import NOTICE_ACTIONS, Posted, StaffNotice
from flows.replies import Replies
from flows.staff import kind_label
from nlu.entities import mask_personal_data

log = logging.getLogger("tongxin.wecom")

MAX_MARKDOWN_BYTES = 4096
POSTS_PER_MINUTE = 20
RATE_LIMITED = 45009
SUMMARY_CHARS = 60
# Ticket fields that say what the ticket is about, best first.
SUMMARY_FIELDS = ("description", "reason", "problem", "issue", "details", "notes")
SKIPPED_FIELDS = frozenset({"phone", "attachments", "conversation", "collected", "anonymised"})


def summary_of(notice: StaffNotice) -> str:
    """One masked line about the ticket (phones and ID numbers hidden)."""
    ticket = notice.ticket
    if ticket is None:
        return "-"
    fields = ticket.fields
    text = next((str(fields[n]) for n in SUMMARY_FIELDS if fields.get(n)), "")
    if not text:
        shown = (v for k, v in fields.items() if k not in SKIPPED_FIELDS)
        text = "；".join(str(v) for v in shown if isinstance(v, str | int))
    text = mask_personal_data(" ".join(text.split()), mask_phones=True)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def notice_markdown(replies: Replies, notice: StaffNotice, public_url: str | None) -> str:
    ticket, event = notice.ticket, notice.event
    values = {
        "ticket_id": event.ticket_id,
        "kind_label": kind_label(replies, ticket.kind) if ticket else "-",
        "department": ticket.department if ticket else "-",
        "summary": summary_of(notice),
    }
    lines = [
        replies.text(f"notice.{notice.what}", **values),
        replies.text("notice.details", **values),
    ]
    if public_url:
        url = f"{public_url.rstrip('/')}/staff/tickets/{event.ticket_id}"
        lines.append(replies.text("notice.link", url=url))
    return "\n".join(lines)


@dataclass
class PostWindow:
    """WeCom's limit as a sliding window of post times, with posts spaced
    evenly (60 s / 20) so that a steady stream is batched, not bunched."""

    limit: int = POSTS_PER_MINUTE
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    sent: deque[float] = field(default_factory=deque)

    def wait(self) -> float:
        """Seconds until the next post may go."""
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window_s:
            self.sent.popleft()
        waits = [0.0]
        if self.sent:
            waits.append(self.sent[-1] + self.window_s / self.limit - now)
        if len(self.sent) >= self.limit:
            waits.append(self.sent[0] + self.window_s - now)
        return max(waits)

    def record(self) -> None:
        self.sent.append(self.clock())


class WeComNotifier:
    """`StaffNotifier` for a WeCom group robot."""

    name = "wecom"
    actions = NOTICE_ACTIONS
    batch = 50

    def __init__(
        self,
        webhook_url: str,
        replies: Replies,
        *,
        public_url: str | None = None,
        window: PostWindow | None = None,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.webhook_url = webhook_url
        self.replies = replies
        self.public_url = public_url
        self.window = window or PostWindow()
        self.backoff = backoff or Backoff(first_s=5.0, max_s=300.0, max_attempts=1_000_000)
        self.timeout_s = timeout_s
        self.failures = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._client: httpx.AsyncClient | None = None

    def pack(self, notices: Sequence[StaffNotice]) -> tuple[str, int]:
        """As many notices as fit one markdown message; (content, how many)."""
        blocks: list[str] = []
        for notice in notices:
            block = notice_markdown(self.replies, notice, self.public_url)
            header = self.replies.text("notice.header", count=len(blocks) + 1)
            candidate = "\n\n".join([header, *blocks, block])
            if blocks and len(candidate.encode("utf-8")) > MAX_MARKDOWN_BYTES:
                break
            blocks.append(block)
        header = self.replies.text("notice.header", count=len(blocks))
        content = "\n\n".join([header, *blocks])
        return content.encode("utf-8")[:MAX_MARKDOWN_BYTES].decode("utf-8", "ignore"), len(blocks)

    async def post(self, notices: Sequence[StaffNotice]) -> Posted:
        wait = self.window.wait()
        if wait > 0:
            return Posted(0, wait)
        content, count = self.pack(notices)
        body = {"msgtype": "markdown", "markdown": {"content": content}}
        self.window.record()
        ids = ",".join(n.event.ticket_id for n in notices[:count])
        try:
            answer = await self._send(body)
        except (httpx.HTTPError, ValueError) as exc:
            return self._failed(f"network: {type(exc).__name__}", ids)
        errcode = answer.get("errcode")
        if errcode == 0:
            self.failures, self.last_ok, self.last_error = 0, time.time(), None
            log.info("wecom: posted %d notice(s): %s", count, ids)
            return Posted(count)
        if errcode == RATE_LIMITED:
            self.last_error = f"{RATE_LIMITED} rate limited"
            log.warning("wecom: 45009 rate limited; waiting a minute (%s)", ids)
            return Posted(0, self.window.window_s)
        # errmsg is WeCom's own text (it never echoes the message).
        return self._failed(f"{errcode} {str(answer.get('errmsg', ''))[:120]}", ids)

    def _failed(self, error: str, ids: str) -> Posted:
        delay = self.backoff.delay(self.failures)
        self.failures += 1
        self.last_error = error
        log.warning("wecom: post of %s failed (%s); retrying in %.0f s", ids, error, delay)
        return Posted(0, delay)

    async def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        res = await self._client.post(self.webhook_url, json=body)
        res.raise_for_status()
        answer = res.json()
        if not isinstance(answer, dict):
            raise ValueError("answer is not WeCom's JSON")
        return answer

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def health(self) -> dict[str, Any]:
        return {
            "configured": True,
            # None until the first post: nothing is known yet.
            "reachable": None if self.last_ok is self.last_error is None else not self.failures,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
        }
