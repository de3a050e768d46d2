"""kill -9 of the server process that holds the outbox leases, with a second
server on the same database: the second takes over the WeChat and Telegram
outboxes within a lease's time to live, every queued message arrives, and the
one message that was being sent at the crash arrives again headed by a note
that it may be a repeat (at-least-once, made harmless)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.channels.telegram.channel import LEASE_TTL_S
from bot.channels.wechat.delivery import LEASE_S
from flows.paths import default_data_dir
from flows.replies import Replies
from flows.store import Store
from tests.hardening.live import start_server

from .telegram.conftest import fake as telegram_fake
from .wechat.conftest import APPID, SECRET, FakeWeChatApi

OPENID = "oHandoverUser000000000000001"
CHAT = 424242


@pytest.fixture
def wechat_api() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi().start()
    yield api
    api.stop()


@pytest.fixture
def telegram_api() -> Iterator[Any]:
    api = telegram_fake.FakeBotApi()
    api.start_in_thread()
    yield api
    api.stop()


def _wait_for(check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until `check()` held; fails after `timeout_s`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"not within {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _in_flight(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [
            r[0] for r in conn.execute("SELECT key FROM kv WHERE key LIKE 'outbox:in_flight:%'")
        ]


def test_a_killed_lease_holder_hands_both_outboxes_over_and_the_one_repeat_says_so(
    tmp_path: Path, model_dir: Path, wechat_api: FakeWeChatApi, telegram_api: Any
) -> None:
    db = tmp_path / "tongxin.db"
    env = {
        "TONGXIN_WECHAT_APPID": APPID,
        "TONGXIN_WECHAT_SECRET": SECRET,
        "TONGXIN_WECHAT_API_URL": wechat_api.url,
        "TONGXIN_TELEGRAM_TOKEN": telegram_api.token,
        "TONGXIN_TELEGRAM_API_URL": telegram_api.url,
        "TONGXIN_TELEGRAM_WEBHOOK_SECRET": "handover-secret",
    }
    notice = Replies.load(default_data_dir() / "replies").text("outbox.maybe_repeated")
    store = Store(db)
    first = start_server(tmp_path, model_dir, env, name="first")
    second = None
    try:
        # The only server takes both leases with its first deliveries.
        store.enqueue("wechat", OPENID, "消息一")
        store.enqueue("telegram", str(CHAT), "消息一", chat_id=str(CHAT))
        _wait_for(lambda: wechat_api.texts_to(OPENID) == ["消息一"], 30)
        _wait_for(lambda: telegram_api.texts_to(CHAT) == ["消息一"], 30)
        second = start_server(tmp_path, model_dir, env, name="second")

        # WeChat is slow to answer: the first server dies in the middle of a send.
        wechat_api.delay_s = 2.0
        arrived = wechat_api.arrived
        store.enqueue("wechat", OPENID, "消息二")
        _wait_for(lambda: bool(_in_flight(db)) and wechat_api.arrived > arrived, 15)
        first.kill9()  # the send has reached WeChat, its answer not yet the server
        killed_at = time.monotonic()
        wechat_api.delay_s = 0.0
        store.enqueue("wechat", OPENID, "消息三")
        store.enqueue("telegram", str(CHAT), "消息二", chat_id=str(CHAT))

        _wait_for(lambda: "消息三" in wechat_api.texts_to(OPENID), LEASE_S + 15)
        wechat_handover = time.monotonic() - killed_at
        _wait_for(lambda: "消息二" in telegram_api.texts_to(CHAT), LEASE_TTL_S + 15)
        telegram_handover = time.monotonic() - killed_at
        time.sleep(3)  # further passes of the second server's workers send nothing more

        # The message in flight had reached WeChat; sent again, it says it may be a repeat.
        assert wechat_api.texts_to(OPENID) == ["消息一", "消息二", f"{notice}\n消息二", "消息三"]
        assert telegram_api.texts_to(CHAT) == ["消息一", "消息二"]
        assert _in_flight(db) == []
        pending = store.list_outbox(status="pending")
        assert pending == []
        print(f"hand-over: wechat {wechat_handover:.1f} s, telegram {telegram_handover:.1f} s")
        assert wechat_handover <= LEASE_S + 8
        assert telegram_handover <= LEASE_TTL_S + 8
        assert "Traceback" not in second.log()
    finally:
        store.close()
        first.stop()
        if second is not None:
            second.stop()
