"""Live takeover on WeChat: signed, encrypted callbacks as WeChat sends them;
while a staff member holds the conversation the HTTP answer is `success`
(the bot says nothing) and the staff's words reach the resident through the
customer-service API of the fake WeChat on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import pytest

from bot.workspace.accounts import StaffUser
from bot.workspace.service import Workspace
from tests.bot.channels.wechat.test_wechat_http import wait_for

pytestmark = pytest.mark.anyio

USER = "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe"


async def test_takeover_on_wechat(kit_factory: Any) -> None:
    async with kit_factory(mode="safe") as kit:
        answer = await kit.wechat.say(USER, "转人工")
        assert "人工" in answer.text
        ticket = kit.core.store.list_tickets(user_id=USER)[0]
        workspace = Workspace.build(kit.core)
        staff = StaffUser("admin", "admin", None, "csrf")
        await anyio.to_thread.run_sync(workspace.take_over, staff, ticket.id)
        told = await wait_for(lambda: kit.api.texts_to(USER))
        assert "人工服务" in told[-1]

        quiet = await kit.wechat.say(USER, "我家楼道的灯坏了一个月了")
        assert quiet.status == 200 and quiet.text is None and quiet.body == "success"
        log = [m["text"] for m in kit.core.store.message_log("wechat", USER)]
        assert log[-1] == "我家楼道的灯坏了一个月了"

        await anyio.to_thread.run_sync(
            lambda: workspace.post_message(staff, ticket.id, "收到，今天派电工上门", internal=False)
        )
        sent = await wait_for(lambda: [t for t in kit.api.texts_to(USER) if "派电工" in t])
        assert sent == ["【工作人员】收到，今天派电工上门"]

        await anyio.to_thread.run_sync(workspace.hand_back, staff, ticket.id)
        back = await kit.wechat.say(USER, "初心驿站是干什么的")
        assert back.text and "驿站" in back.text
