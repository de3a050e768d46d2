"""/healthz lists every channel with its real state: configured or not,
reachable (None until first used), and the last error, for WeChat (the fake
WeChat API) and the WeCom robot (a fake webhook refusing the key)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from bot.staff_notify.service import StaffNoticeService
from bot.staff_notify.wecom import WeComNotifier
from bot.web import create_app
from tests.bot.staff_notify.fake_wecom import KEY, FakeWeCom

from .conftest import make_channel

pytestmark = pytest.mark.anyio
USER = "oHealth5xYk2WmTn7Rb9HcL0gZ1aVe"


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def test_healthz_shows_each_channels_state(make_core: Any, fake_api: Any) -> None:
    wecom = FakeWeCom().start()
    core = make_core()
    wechat = make_channel(core)
    notifier = WeComNotifier(wecom.url.replace(KEY, "revoked-key"), core.replies)
    staff = StaffNoticeService(core.store, notifier, interval_s=0.05)
    app = create_app(core, [wechat, staff])
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://h.test") as client:
                first = (await client.get("/healthz")).json()["channel_state"]
                await asyncio.to_thread(core.store.enqueue, "wechat", USER, "您好")
                core.store.create_ticket(
                    kind="report_issue",
                    department="网格服务站",
                    channel="wechat",
                    user_id=USER,
                    phone=None,
                    fields={"description": "路灯坏了"},
                )
                wechat._wake.set()
                await until(lambda: fake_api.texts_to(USER) and notifier.last_error)
                fake_api.fail_next(40164)  # the server's IP is not on the allow-list
                await asyncio.to_thread(core.store.enqueue, "wechat", USER, "第二条")
                wechat._wake.set()
                await until(lambda: (wechat.api.last_error or "").startswith("40164"))
                health = await client.get("/healthz")
    finally:
        wecom.stop()
    assert first["wechat"]["configured"] is True and first["wechat"]["reachable"] is None
    assert first["telegram"] == {"configured": False}
    state = health.json()["channel_state"]
    assert state["wechat"]["reachable"] is True and state["wechat"]["safe_mode"] is False
    assert state["wechat"]["last_error"].startswith("40164")
    assert state["wecom"]["configured"] is True and state["wecom"]["reachable"] is False
    assert state["wecom"]["last_error"].startswith("93000")
    assert KEY not in health.text and "revoked-key" not in health.text
    assert health.status_code == 200  # delivery problems are shown, the server itself works
