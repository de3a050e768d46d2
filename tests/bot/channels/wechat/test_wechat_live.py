"""One test against a live uvicorn on 127.0.0.1: a merchant completes a
red-credit pre-application over WeChat (safe mode, real TCP), and staff see the
ticket in `tongxin tickets list --json`."""

from __future__ import annotations

import json

import httpx
import pytest

from bot.cli.main import main

pytestmark = pytest.mark.anyio
MERCHANT = "oMerchantNang000000000000001"


async def test_merchant_completes_a_microloan_pre_application(
    live_server, server_for, fixtures_xml, capsys
) -> None:
    base_url, core = live_server("safe")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        health = await client.get("/healthz")
        assert health.json()["channels"] == ["wechat"]
        wechat = server_for(client, "safe")

        welcome = await wechat.send(fixtures_xml("subscribe", user=MERCHANT))
        assert "欢迎关注" in welcome.text
        started = await wechat.send(fixtures_xml("click", user=MERCHANT))
        assert "红色信贷预申请" in started.text and "生意" in started.text
        assert "多少钱" in (await wechat.say(MERCHANT, "我开了一家馕店")).text
        assert "用来做什么" in (await wechat.say(MERCHANT, "五万")).text
        assert "称呼" in (await wechat.say(MERCHANT, "用来进货")).text
        assert "手机号" in (await wechat.say(MERCHANT, "我叫阿依古丽")).text
        summary = await wechat.say(MERCHANT, "139 1234 5678")
        assert "50,000元" in summary.text and "确认" in summary.text
        confirm_id = wechat.next_msg_id()
        done = await wechat.say(MERCHANT, "确认", msg_id=confirm_id)
        assert "已提交" in done.text and "工单号" in done.text
        retry = await wechat.say(MERCHANT, "确认", msg_id=confirm_id)  # WeChat's retry
        assert retry.text == done.text

    assert main(["tickets", "list", "--json", "--db", str(core.settings.db_path)]) == 0
    (ticket,) = json.loads(capsys.readouterr().out)
    assert ticket["kind"] == "microloan" and ticket["channel"] == "wechat"
    assert ticket["user_id"] == MERCHANT and ticket["phone"] == "13912345678"
    assert ticket["fields"]["amount"] == 50000
    assert ticket["id"] in done.text
