"""Delivery: outbox notifications with sendMessage, 403 and 429 handling, flood
limits, long texts, and replies that could not go out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.channels.telegram.limits import FloodLimiter, SlidingWindow, TelegramLimits
from flows.store import parse_iso, utcnow

pytestmark = pytest.mark.anyio

BLOCKED = "Forbidden: bot was blocked by the user"


async def test_outbox_notification_is_sent(tg: Any) -> None:
    row = tg.core.store.enqueue("telegram", "620001", "您的工单已办结。", ticket_id="TX1")
    await tg.wait_for(lambda: tg.core.store.list_outbox(status="sent"))
    assert tg.api.texts_to(620001) == ["您的工单已办结。"]
    (item,) = tg.core.store.list_outbox()
    assert item.id == row and item.attempts == 1


async def test_blocked_user_is_recorded_and_not_retried(tg: Any) -> None:
    tg.api.fail("sendMessage", status=403, description=BLOCKED, times=100)
    tg.core.store.enqueue("telegram", "620002", "通知", ticket_id="TX2")
    await tg.wait_for(lambda: tg.core.store.list_outbox(status="failed"))
    await asyncio.sleep(0.5)  # several outbox rounds
    (item,) = tg.core.store.list_outbox()
    assert item.status == "failed" and "blocked" in (item.last_error or "")
    assert item.attempts == 1
    assert len(tg.api.find("sendMessage", chat_id=620002)) == 1


async def test_retry_after_is_honoured_in_the_outbox(tg: Any) -> None:
    # Both tries (max_retries=1) get 429: the row waits retry_after, then goes.
    tg.api.fail(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
        times=2,
    )
    tg.core.store.enqueue("telegram", "620003", "通知", ticket_id="TX3")
    await tg.wait_for(lambda: tg.core.store.list_outbox()[0].attempts >= 1, timeout=10)
    item = tg.core.store.list_outbox()[0]
    assert item.status == "pending" and "429" in (item.last_error or "")
    assert (parse_iso(item.next_attempt_at) - utcnow()).total_seconds() > 0.3
    await tg.wait_for(lambda: tg.core.store.list_outbox(status="sent"), timeout=10)
    tries = tg.api.find("sendMessage", chat_id=620003)
    assert len(tries) == 3
    assert tries[1].at - tries[0].at >= 1.0  # the limiter paused before its retry
    assert tries[2].at - tries[1].at >= 0.9  # the row waited before the next round


async def test_reply_hit_by_429_is_retried_after_the_wait(tg: Any) -> None:
    tg.api.fail(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
        times=1,
    )
    user = tg.person(620004, "小马")
    sent = await tg.say(tg.message(user, "你好"))
    assert len(sent) == 2  # the refused try and the retry
    assert sent[1].at - sent[0].at >= 1.0
    assert tg.core.store.list_outbox() == []


async def test_reply_that_cannot_be_sent_goes_through_the_outbox(tg: Any) -> None:
    tg.api.fail("sendMessage", status=502, description="Bad Gateway", times=1)
    user = tg.person(620005, "小杨")
    await tg.say(tg.message(user, "你好"))
    await tg.wait_for(lambda: tg.core.store.list_outbox(status="sent"))
    texts = tg.api.texts_to(620005)
    assert len(texts) == 2 and texts[0] == texts[1] and "同心" in texts[1]


async def test_long_outbox_text_is_trimmed_to_4096(tg: Any) -> None:
    tg.core.store.enqueue("telegram", "620006", "进" * 5000)
    await tg.wait_for(lambda: tg.core.store.list_outbox(status="sent"))
    (text,) = tg.api.texts_to(620006)
    assert len(text) == 4096 and text.endswith("…")


async def test_group_messages_are_held_to_the_per_group_limit() -> None:
    limiter = FloodLimiter(TelegramLimits(group_per_min=2, overall_per_s=0))
    sent: list[object] = []

    async def send(chat_id: int) -> bool:
        sent.append(chat_id)
        return True

    async def request(chat_id: int) -> object:
        return await limiter.process_request(
            send, (chat_id,), {}, "sendMessage", {"chat_id": chat_id}, None
        )

    await request(-100)
    await request(-100)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(request(-100), 0.3)  # third in a minute waits
    await asyncio.wait_for(request(-200), 0.3)  # another group is not held up
    for _ in range(5):
        await asyncio.wait_for(request(42), 0.3)  # private chats are not group-limited
    assert sent == [-100, -100, -200, 42, 42, 42, 42, 42]
    # Editing a staff message is not a new message in the group.
    await asyncio.wait_for(
        limiter.process_request(
            send, (-100,), {}, "editMessageReplyMarkup", {"chat_id": -100}, None
        ),
        0.3,
    )


async def test_bulk_messages_are_held_to_the_overall_rate() -> None:
    limiter = FloodLimiter(TelegramLimits(overall_per_s=10, group_per_min=0))

    async def send() -> bool:
        return True

    start = time.monotonic()
    for _ in range(25):
        await limiter.process_request(send, (), {}, "sendMessage", {"chat_id": 1}, True)
    bulk = time.monotonic() - start
    assert bulk >= 1.9  # 25 at 10/s: two full windows of waiting
    start = time.monotonic()
    for _ in range(25):
        await limiter.process_request(send, (), {}, "sendMessage", {"chat_id": 1}, None)
    assert time.monotonic() - start < 0.5  # replies are not counted as bulk


async def test_sliding_window_serves_in_order() -> None:
    window = SlidingWindow(2, 0.2)
    order: list[int] = []

    async def take(n: int) -> None:
        await window.acquire()
        order.append(n)

    start = time.monotonic()
    await asyncio.gather(*(take(n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert time.monotonic() - start >= 0.39


async def test_one_chats_429_does_not_stall_other_chats() -> None:
    limiter = FloodLimiter(TelegramLimits(overall_per_s=0, group_per_min=0, max_retries=1))
    refused: list[int] = []

    async def send(chat_id: int) -> bool:
        if chat_id == 1 and not refused:
            refused.append(chat_id)
            raise RetryAfter(2)
        return True

    async def request(chat_id: int) -> float:
        start = time.monotonic()
        await limiter.process_request(
            send, (chat_id,), {}, "sendMessage", {"chat_id": chat_id}, None
        )
        return time.monotonic() - start

    spammer = asyncio.ensure_future(request(1))
    await asyncio.sleep(0.05)  # its 429 has come
    assert await request(2) < 0.3  # another user's reply goes at once
    assert await spammer >= 2.0  # the flooding chat waits out retry_after
